from __future__ import annotations

from fastapi import APIRouter, Depends

from ..schemas import ERROR_RESPONSES, PredictRequest, PredictResponse, Prediction
from ..service import ModelService
from . import get_service

router = APIRouter(prefix="/v1", tags=["predict"])


@router.post("/predict", response_model=PredictResponse, responses=ERROR_RESPONSES, summary="classify texts")
async def predict(body: PredictRequest, service: ModelService = Depends(get_service)) -> PredictResponse:
    """The predicted label and every class probability for each text, in input order. Concurrent
    requests are micro-batched together."""
    rows = await service.predict(body.texts)
    return PredictResponse(predictions=[Prediction(**r) for r in rows])
