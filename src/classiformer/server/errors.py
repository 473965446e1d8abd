"""One JSON error shape for every failure the API reports.

``{"error": {"type": ..., "message": ..., ...}}``, plus ``limit`` and ``value`` when a configured
limit was exceeded, so a client can tell exactly which limit to respect.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An error answered as JSON with ``status``."""

    def __init__(self, status: int, type: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.type = type
        self.message = message
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return {"error": {"type": self.type, "message": self.message, **self.extra}}


def limit_error(limit: str, value: float | int, message: str, status: int = 413) -> ApiError:
    return ApiError(status, "limit_exceeded", message, limit=limit, value=value)


def error_response(status: int, type: str, message: str, headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": {"type": type, "message": message, **extra}}, status_code=status, headers=headers)


def _location(loc: Any) -> str:
    return ".".join(str(p) for p in loc if p != "body") or "body"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        # Inputs are not echoed back: they may be large, or not even encodable.
        details = [{"location": _location(e.get("loc", ())), "message": str(e.get("msg", ""))} for e in exc.errors()]
        first = details[0] if details else {"location": "body", "message": "invalid request"}
        message = f"invalid request: {first['location']}: {first['message']}"
        return error_response(422, "validation_error", message, details=details)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error_response(exc.status_code, "http_error", str(exc.detail), headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(500, "internal_error", f"internal server error ({type(exc).__name__})")
