"""Liveness (the process answers) and readiness (the model is loaded and taking requests)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from ..schemas import ErrorBody, Health

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health, summary="liveness")
async def healthz() -> Health:
    return Health(status="ok")


@router.get("/readyz", response_model=Health, summary="readiness", responses={503: {"model": ErrorBody}})
async def readyz(request: Request) -> Health | JSONResponse:
    service = request.app.state.service
    if service is None or not service.ready:
        return JSONResponse(
            {"error": {"type": "unavailable", "message": "the model is not loaded (starting or shutting down)"}},
            status_code=503,
        )
    return Health(status="ready")
