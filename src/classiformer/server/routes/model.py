from __future__ import annotations

from fastapi import APIRouter

from ..schemas import ERROR_RESPONSES, ModelInfo
from . import Service

router = APIRouter(prefix="/v1", tags=["model"])


@router.get("/model", response_model=ModelInfo, responses={k: ERROR_RESPONSES[k] for k in (401, 503)}, summary="the served model")
async def model_info(service: Service) -> ModelInfo:
    """Labels, model family, configuration, versions, limits and batching statistics."""
    return ModelInfo(**service.info())
