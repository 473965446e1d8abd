"""ASGI middleware: the request body's size limit and read timeout, enforced before the body
reaches the app."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send


async def send_json(send: Send, status: int, body: dict[str, Any]) -> None:
    data = json.dumps(body).encode("utf-8")
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode()),
                    (b"connection", b"close")],
    })
    await send({"type": "http.response.body", "body": data})


class BodySizeLimit:
    """Answer 413 when a request body exceeds ``max_bytes``, whether or not it declares its length,
    and 408 when the whole body has not arrived within ``read_timeout_s`` (a client that declares
    a Content-Length and sends less would otherwise hold its connection for ever).

    The body is read (at most ``max_bytes``) before the app sees it, then replayed.
    """

    def __init__(self, app: ASGIApp, max_bytes: int, read_timeout_s: float | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.read_timeout_s = read_timeout_s

    def _too_slow(self) -> dict[str, Any]:
        return {"error": {
            "type": "limit_exceeded", "limit": "read_timeout_s", "value": self.read_timeout_s,
            "message": f"the request body did not arrive within read_timeout_s ({self.read_timeout_s} s)",
        }}

    def _too_large(self) -> dict[str, Any]:
        return {"error": {
            "type": "limit_exceeded", "limit": "max_body_bytes", "value": self.max_bytes,
            "message": f"request body is larger than max_body_bytes ({self.max_bytes} bytes)",
        }}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None:
            if not declared.strip().isdigit():
                await send_json(send, 400, {"error": {"type": "bad_request", "message": "invalid Content-Length header"}})
                return
            if int(declared) > self.max_bytes:
                await send_json(send, 413, self._too_large())
                return
        chunks: list[bytes] = []
        size = 0
        loop = asyncio.get_running_loop()
        # One deadline for the whole body, so that trickling a byte at a time does not extend it.
        deadline = None if self.read_timeout_s is None else loop.time() + self.read_timeout_s
        while True:
            try:
                message = await asyncio.wait_for(receive(), None if deadline is None else max(0.0, deadline - loop.time()))
            except asyncio.TimeoutError:
                await send_json(send, 408, self._too_slow())
                return
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await send_json(send, 413, self._too_large())
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)
