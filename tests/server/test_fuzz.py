"""Fuzz the API from its own OpenAPI schema (schemathesis; a bounded number of valid and invalid
requests per operation): no 5xx, responses
match the schema, and every error is a well-formed JSON error."""

from __future__ import annotations

import pytest

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis is not installed (pip install schemathesis)")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from classiformer import Classifier  # noqa: E402
from classiformer.server import ServerSettings, create_app  # noqa: E402

LIMITS = {"max_texts": 5, "max_chars": 40, "max_body_bytes": 600}
OPERATIONS = [("POST", "/v1/predict", 40), ("POST", "/v1/explain", 25), ("GET", "/v1/model", 10),
              ("GET", "/healthz", 5), ("GET", "/readyz", 5)]


@pytest.fixture(scope="module")
def api_schema(classifier: Classifier):  # type: ignore[no-untyped-def]
    # Small limits, so that generated requests cross them too.
    app = create_app(classifier, ServerSettings(**LIMITS, max_wait_ms=1))
    return schemathesis.openapi.from_asgi("/openapi.json", app)


def check_response(case, response) -> None:  # type: ignore[no-untyped-def]
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        body = response.json()
        assert set(body) == {"error"}, body
        error = body["error"]
        assert isinstance(error["type"], str) and error["type"]
        assert isinstance(error["message"], str) and error["message"]
        if error["type"] == "limit_exceeded":
            assert LIMITS[error["limit"]] == error["value"]
    case.validate_response(
        response, checks=[status_code_conformance, content_type_conformance, response_schema_conformance]
    )


@pytest.mark.parametrize(
    ("method", "path", "examples", "mode"),
    # GET operations take no input to get wrong, so only valid requests are made of them.
    [(*op, "positive") for op in OPERATIONS] + [(*op, "negative") for op in OPERATIONS if op[0] == "POST"],
)
def test_api_from_its_schema(api_schema, method: str, path: str, examples: int, mode: str) -> None:  # type: ignore[no-untyped-def]
    operation = api_schema[path][method]

    @given(case=operation.as_strategy(schemathesis.GenerationMode(mode)))
    @settings(max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def fuzz(case) -> None:  # type: ignore[no-untyped-def]
        check_response(case, case.call())

    fuzz()
