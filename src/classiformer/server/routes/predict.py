from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from ..schemas import ERROR_RESPONSES, PredictRequest, PredictResponse
from . import Service

router = APIRouter(prefix="/v1", tags=["predict"])


@router.post("/predict", response_model=PredictResponse, responses=ERROR_RESPONSES, summary="classify texts")
async def predict(body: PredictRequest, service: Service) -> JSONResponse:
    """The predicted label (a multi-label model: labels) and every class probability, or with
    ``top_k`` the best labels and their scores, for each text, in input order. Concurrent
    requests are micro-batched together."""
    # Built by the service in PredictResponse's shape; answered directly, as re-validating every
    # response would cost as much as the request's share of a model call.
    return JSONResponse({"predictions": await service.predict(body.texts, body.top_k)})
