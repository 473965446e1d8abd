"""One router per resource: health, predictions, explanations, the model, the web page."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from ..errors import ApiError
from ..service import ModelService


async def get_service(request: Request) -> ModelService:
    # async: a plain def dependency would cost a thread hop per request
    service: ModelService | None = request.app.state.service
    if service is None or not service.ready:
        raise ApiError(503, "unavailable", "the model is not loaded (the server is starting or shutting down)")
    return service


Service = Annotated[ModelService, Depends(get_service)]
