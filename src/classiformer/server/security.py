"""Optional API key, checked in constant time; required when the server binds beyond loopback."""

from __future__ import annotations

import secrets

from fastapi import Request, Security
from fastapi.security import APIKeyHeader

from .errors import ApiError

API_KEY_HEADER = "X-API-Key"

_header = APIKeyHeader(name=API_KEY_HEADER, auto_error=False, description="needed when the server was started with an API key")


async def require_api_key(request: Request, key: str | None = Security(_header)) -> None:
    expected: str | None = request.app.state.settings.api_key
    if expected is None:
        return
    if key is None or not secrets.compare_digest(key.encode("utf-8"), expected.encode("utf-8")):
        raise ApiError(401, "unauthorized", f"missing or wrong API key: send it in the {API_KEY_HEADER} header")
