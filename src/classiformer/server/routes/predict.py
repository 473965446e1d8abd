from __future__ import annotations

from fastapi import APIRouter

from ..schemas import ERROR_RESPONSES, Prediction, PredictRequest, PredictResponse
from . import Service

router = APIRouter(prefix="/v1", tags=["predict"])


@router.post("/predict", response_model=PredictResponse, responses=ERROR_RESPONSES, summary="classify texts")
async def predict(body: PredictRequest, service: Service) -> PredictResponse:
    """The predicted label and every class probability for each text, in input order. Concurrent
    requests are micro-batched together."""
    rows = await service.predict(body.texts)
    return PredictResponse(predictions=[Prediction(**r) for r in rows])
