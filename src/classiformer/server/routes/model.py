from __future__ import annotations

from fastapi import APIRouter, Depends

from ..schemas import ERROR_RESPONSES, ModelInfo
from ..service import ModelService
from . import get_service

router = APIRouter(prefix="/v1", tags=["model"])


@router.get("/model", response_model=ModelInfo, responses={k: ERROR_RESPONSES[k] for k in (401, 503)}, summary="the served model")
async def model_info(service: ModelService = Depends(get_service)) -> ModelInfo:
    """Labels, model family, configuration, versions, limits and batching statistics."""
    return ModelInfo(**service.info())
