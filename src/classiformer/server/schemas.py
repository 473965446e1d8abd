"""Request and response bodies: pydantic lives here, at the HTTP boundary, and nowhere else."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ErrorDetail(BaseModel):
    type: str = Field(description="machine-readable kind: validation_error, limit_exceeded, unauthorized, ...")
    message: str
    limit: str | None = Field(None, description="the configured limit that was exceeded")
    value: int | float | None = Field(None, description="that limit's value")
    details: list[dict[str, str]] | None = None


class ErrorBody(BaseModel):
    error: ErrorDetail


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"texts": ["Stocks rally as oil prices fall"]}]})

    texts: list[str] = Field(description="texts to classify (at most max_texts; each not blank, at most max_chars characters)")
    # strict: true or "2" is a client's mistake, not 1 or 2
    top_k: int | None = Field(
        None, ge=1, strict=True, description="answer each text's top_k best labels with their scores (top_k) instead of every "
        "label's probability; the decision (label or labels) stays"
    )


class LabelScore(BaseModel):
    label: str
    score: float


class Prediction(BaseModel):
    label: str | None = Field(None, description="single-label models: the most probable class")
    labels: list[str] | None = Field(
        None, description="multi-label models: every label whose probability reaches its tuned threshold (may be empty)"
    )
    probabilities: dict[str, float] | None = Field(
        None, description="probability of every class (multi-label: of each label on its own), in the model's label "
        "order; absent when top_k was asked for"
    )
    top_k: list[LabelScore] | None = Field(None, description="with top_k: the best labels and their scores, best first")


class PredictResponse(BaseModel):
    predictions: list[Prediction] = Field(description="one per input text, in input order")


class ExplainRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"text": "Stocks rally as oil prices fall"}]})

    text: str = Field(description="the text to explain (not blank, at most max_chars characters)")
    methods: list[str] | None = Field(
        None, max_length=8, description="importance methods (default: rollout, gradient and, for a model with an n-gram branch, ngram)"
    )
    label: str | None = Field(
        None, description="the label whose score to explain: any of the model's labels, predicted or not (default: "
        "the highest-scoring label, a single-label model's prediction)"
    )


class AttentionSummary(BaseModel):
    layer: int = Field(description="0-based index of the summarised layer (the last one)")
    layers: int
    heads: int
    reduction: str = Field(description="how the heads were combined")
    matrix: list[list[float]] = Field(description="T x T: row i is how much token i attends to each token")


class ExplainResponse(BaseModel):
    text: str
    tokens: list[str]
    label: str = Field(description="the label explained")
    predicted: list[str] = Field(
        description="what the model predicts for the text: its class, or a multi-label model's labels at their thresholds"
    )
    probabilities: dict[str, float]
    importance: dict[str, list[float]] = Field(description="per method, one score per token")
    special: list[bool] = Field(
        description="one per token: True for the tokenizer's special tokens ([CLS], [SEP], ...), which displays leave out"
    )
    notes: list[str] = Field(description="what the scores leave out (e.g. the n-gram branch of the base preset)")
    attention: AttentionSummary | None = Field(None, description="absent when the model exposes no attention")


class Limits(BaseModel):
    # int before float: a count such as max_texts stays 64, not 64.0
    max_texts: int = Field(description="most texts per POST /v1/predict")
    max_chars: int = Field(description="most characters per text")
    max_body_bytes: int = Field(description="largest request body")
    request_timeout_s: float = Field(description="longest a request may take, in seconds")
    read_timeout_s: float = Field(description="longest a client may take to send a request's headers, and its body")


class ModelInfo(BaseModel):
    name: str = Field(description="the model folder's name")
    family: str
    problem_type: str = Field(
        description="single_label_classification (one class per text) or multi_label_classification (a label set)"
    )
    labels: list[str]
    config: dict[str, Any] = Field(description="the model's and tokenizer's configuration")
    temperature: float
    versions: dict[str, Any]
    limits: Limits
    batching: dict[str, Any]
    explain: bool = Field(description="whether POST /v1/explain is available (not for an exported ONNX model)")
    runtime: str = Field("pytorch", description="what runs the model: pytorch, or onnxruntime for an exported folder")


class Health(BaseModel):
    status: str


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "the body cannot be parsed (not UTF-8 JSON)"},
    401: {"model": ErrorBody, "description": "missing or wrong API key"},
    408: {"model": ErrorBody, "description": "the request body did not arrive within read_timeout_s"},
    413: {"model": ErrorBody, "description": "a limit was exceeded (the error names it and its value)"},
    422: {"model": ErrorBody, "description": "the request body is invalid"},
    503: {"model": ErrorBody, "description": "the server is starting, shutting down or overloaded"},
    504: {"model": ErrorBody, "description": "the request took longer than request_timeout_s"},
}
