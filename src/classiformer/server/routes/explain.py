from __future__ import annotations

from fastapi import APIRouter

from ..schemas import ERROR_RESPONSES, ExplainRequest, ExplainResponse
from . import Service

router = APIRouter(prefix="/v1", tags=["explain"])


@router.post(
    "/explain", response_model=ExplainResponse, summary="explain one prediction",
    responses=ERROR_RESPONSES,
)
async def explain(body: ExplainRequest, service: Service) -> ExplainResponse:
    """The text's tokens, an importance score per token for each method (for ``label``, or the
    highest-scoring label), and the last layer's head-averaged attention matrix."""
    return ExplainResponse(**await service.explain(body.text, body.methods, body.label))
