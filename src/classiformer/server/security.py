"""Optional API key, checked in constant time; required when the server binds beyond loopback.

The key is checked twice on purpose: ``ApiKeyGuard`` (ASGI, before the body is read or parsed, so
an unauthenticated client gets 401 and never a 413 or 422 that describes the API), and the
``require_api_key`` dependency, which declares the scheme in the OpenAPI document (the docs'
"Authorize" button) and guards any route mounted without the middleware.
"""

from __future__ import annotations

import secrets

from fastapi import Request, Security
from fastapi.security import APIKeyHeader
from starlette.types import ASGIApp, Receive, Scope, Send

from .errors import ApiError
from .middleware import send_json

API_KEY_HEADER = "X-API-Key"
GUARDED_PREFIX = "/v1/"
UNAUTHORIZED = f"missing or wrong API key: send it in the {API_KEY_HEADER} header"


def key_matches(key: str | bytes | None, expected: str) -> bool:
    if key is None:
        return False
    given = key if isinstance(key, bytes) else key.encode("utf-8", "surrogateescape")
    return secrets.compare_digest(given, expected.encode("utf-8"))

_header = APIKeyHeader(name=API_KEY_HEADER, auto_error=False, description="needed when the server was started with an API key")


async def require_api_key(request: Request, key: str | None = Security(_header)) -> None:
    expected: str | None = request.app.state.settings.api_key
    if expected is None:
        return
    if not key_matches(key, expected):
        raise ApiError(401, "unauthorized", UNAUTHORIZED)


class ApiKeyGuard:
    """Answer 401 to a ``/v1/`` request without the right key, before anything reads its body."""

    def __init__(self, app: ASGIApp, api_key: str | None) -> None:
        self.app = app
        self.api_key = api_key

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.api_key is None or scope["type"] != "http" or not scope["path"].startswith(GUARDED_PREFIX):
            await self.app(scope, receive, send)
            return
        wanted = API_KEY_HEADER.lower().encode("latin-1")
        key = next((v for k, v in scope.get("headers") or [] if k == wanted), None)
        if not key_matches(key, self.api_key):
            await send_json(send, 401, {"error": {"type": "unauthorized", "message": UNAUTHORIZED}})
            return
        await self.app(scope, receive, send)
