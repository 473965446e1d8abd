"""The HTTP API: predictions match the library, limits answer with named JSON errors, concurrent
requests are micro-batched without mixing results, access control and shutdown behave."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient

from classiformer import Classifier
from classiformer.cli import main
from classiformer.config import ConfigError
from classiformer.server import ServerSettings, check_bind, create_app, is_loopback

from ..conftest import make_texts
from .conftest import free_port


def client_for(clf: Classifier, **settings) -> TestClient:  # type: ignore[no-untyped-def]
    return TestClient(create_app(clf, ServerSettings(**settings)))


def assert_error(response: httpx.Response, status: int, type_: str | None = None) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert isinstance(error["message"], str) and error["message"]
    if type_:
        assert error["type"] == type_
    return error


# -- predictions and model info --------------------------------------------------------------------

def test_predict_matches_the_library(classifier: Classifier) -> None:
    texts = ["goal match team", "stock market price", "x", "robot chip code code code", "Ünïcode 😀 — data"]
    expected = classifier.predict_proba(texts)
    with client_for(classifier) as client:
        r = client.post("/v1/predict", json={"texts": texts})
    assert r.status_code == 200
    predictions = r.json()["predictions"]
    assert len(predictions) == len(texts)
    for p, row in zip(predictions, expected):
        assert list(p["probabilities"]) == classifier.labels
        np.testing.assert_allclose(list(p["probabilities"].values()), row, atol=1e-6)
        assert p["label"] == classifier.labels[int(row.argmax())]


def test_model_loads_from_a_path_at_startup_not_before(served_model: Path) -> None:
    app = create_app(served_model)
    assert app.state.service is None  # nothing loaded by create_app
    with TestClient(app) as client:
        info = client.get("/v1/model").json()
        assert client.get("/readyz").status_code == 200
    assert info["name"] == served_model.name
    assert info["family"] == "transformer"
    assert info["labels"] == ["money", "sports", "tech"]
    assert info["config"]["model"]["embed_dim"] == 16
    assert info["config"]["tokenizer"]["kind"] == "words"
    assert {"classiformer", "torch", "python", "format_version"} <= set(info["versions"])
    assert info["limits"]["max_texts"] == 64
    assert info["explain"] is True
    assert app.state.service is None  # closed with the lifespan


def test_model_info_reports_counts_as_integers(classifier: Classifier) -> None:
    with client_for(classifier, max_texts=7, request_timeout_s=2.5) as client:
        raw = client.get("/v1/model").text
    # The JSON text itself: 7, not 7.0 (a float limit invites clients to send 7.5 texts)
    assert '"max_texts":7,' in raw.replace(" ", "")
    limits = httpx.Response(200, text=raw).json()["limits"]
    for name in ("max_texts", "max_chars", "max_body_bytes"):
        assert type(limits[name]) is int, (name, limits[name])
    assert limits["request_timeout_s"] == 2.5


def test_health_and_readiness(classifier: Classifier) -> None:
    app = create_app(classifier)
    outside = TestClient(app)  # no lifespan: the model is not loaded
    assert outside.get("/healthz").json() == {"status": "ok"}
    assert_error(outside.get("/readyz"), 503, "unavailable")
    assert_error(outside.post("/v1/predict", json={"texts": ["a"]}), 503, "unavailable")
    with TestClient(app) as client:
        assert client.get("/readyz").json() == {"status": "ready"}


def test_openapi_and_page_are_served(classifier: Classifier) -> None:
    with client_for(classifier) as client:
        spec = client.get("/openapi.json").json()
        assert {"/v1/predict", "/v1/explain", "/v1/model", "/healthz", "/readyz"} <= set(spec["paths"])
        page = client.get("/")
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        assert "default-src 'self'" in page.headers["content-security-policy"]
        for asset in ("/static/app.js", "/static/style.css"):
            assert client.get(asset).status_code == 200
        # The page fetches nothing from elsewhere.
        for text in (page.text, client.get("/static/app.js").text, client.get("/static/style.css").text):
            assert "http://" not in text and "https://" not in text


# -- limits -----------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("body", "limit", "value"),
    [
        ({"texts": ["a"] * 4}, "max_texts", 3),
        ({"texts": ["ok", "x" * 51]}, "max_chars", 50),
        ({"texts": ["y" * 45] * 3}, "max_body_bytes", 120),
    ],
)
def test_limits_answer_413_naming_the_limit(classifier: Classifier, body: dict, limit: str, value: int) -> None:
    with client_for(classifier, max_texts=3, max_chars=50, max_body_bytes=120) as client:
        error = assert_error(client.post("/v1/predict", json=body), 413, "limit_exceeded")
        assert error["limit"] == limit and error["value"] == value
        assert str(value) in error["message"]
        # Just under every limit is fine.
        assert client.post("/v1/predict", json={"texts": ["z" * 30] * 3}).status_code == 200


def test_body_limit_holds_without_content_length(classifier: Classifier) -> None:
    def chunks():  # streamed: no Content-Length header
        yield b'{"texts": ["'
        for _ in range(10):
            yield b"w" * 50
        yield b'"]}'

    with client_for(classifier, max_body_bytes=200, max_chars=10_000) as client:
        error = assert_error(client.post("/v1/predict", content=chunks(), headers={"content-type": "application/json"}), 413)
    assert error["limit"] == "max_body_bytes"


def test_explain_text_limit(classifier: Classifier) -> None:
    with client_for(classifier, max_chars=10) as client:
        r = client.post("/v1/explain", json={"text": "x" * 11})
    assert assert_error(r, 413)["limit"] == "max_chars"


@pytest.mark.parametrize(
    "body",
    [
        b'{"texts": []}',
        b'{"texts": "just a string"}',
        b'{"texts": [1, 2]}',
        b'{"texts": ["a"], "extra": true}',
        b'{"text": ["a"]}',
        b'{"texts": ["unterminated',
        b"[]",
        b'{"texts": ["\\ud800 lone surrogate"]}',
    ],
)
def test_invalid_bodies_are_422_json(classifier: Classifier, body: bytes) -> None:
    with client_for(classifier) as client:
        assert_error(client.post("/v1/predict", content=body, headers={"content-type": "application/json"}), 422, "validation_error")


@pytest.mark.parametrize("blank", ["", "   ", "\n\t "])
def test_empty_texts_are_refused_naming_the_index(classifier: Classifier, blank: str) -> None:
    # The same rule as the file readers (an empty text has nothing to classify): 422, never a guess.
    with client_for(classifier) as client:
        error = assert_error(client.post("/v1/predict", json={"texts": ["fine", blank]}), 422, "validation_error")
        assert "texts[1]" in error["message"] and "empty" in error["message"]
        error = assert_error(client.post("/v1/explain", json={"text": blank}), 422, "validation_error")
        assert error["message"].startswith("text is empty")


def test_request_timeout_is_504_naming_the_limit(classifier: Classifier) -> None:
    # The batch waits 2 s for company; the request gives up after 0.2 s.
    with client_for(classifier, max_wait_ms=2000, request_timeout_s=0.2) as client:
        start = time.monotonic()
        error = assert_error(client.post("/v1/predict", json={"texts": ["goal"]}), 504, "limit_exceeded")
        assert time.monotonic() - start < 1.5
    assert error["limit"] == "request_timeout_s" and error["value"] == 0.2


# -- batching ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("batching", [True, False])
def test_concurrent_requests_get_their_own_results(classifier: Classifier, batching: bool) -> None:
    texts = make_texts(90, seed=7).texts
    requests = [texts[i : i + 1 + i % 4] for i in range(0, 90, 3)]  # 30 requests of 1-4 texts
    expected = [classifier.predict_proba(r) for r in requests]  # each one alone
    app = create_app(classifier, ServerSettings(batching=batching, max_batch_size=16, max_wait_ms=30))
    with TestClient(app) as client, ThreadPoolExecutor(12) as pool:
        responses = list(pool.map(lambda r: client.post("/v1/predict", json={"texts": r}), requests))
        stats = client.get("/v1/model").json()["batching"]["stats"]
    for r, want in zip(responses, expected):
        assert r.status_code == 200
        got = np.array([list(p["probabilities"].values()) for p in r.json()["predictions"]])
        np.testing.assert_allclose(got, want, atol=1e-5)
    assert stats["requests"] == len(requests)
    assert stats["texts"] == sum(map(len, requests))
    if batching:
        assert stats["batches"] < len(requests), stats  # requests really shared model calls
        assert stats["largest_batch"] <= 16
    else:
        assert stats["batches"] == len(requests)


# -- access -----------------------------------------------------------------------------------------

def test_api_key(classifier: Classifier) -> None:
    with client_for(classifier, api_key="s3cret") as client:
        assert_error(client.post("/v1/predict", json={"texts": ["a"]}), 401, "unauthorized")
        assert_error(client.get("/v1/model", headers={"X-API-Key": "wrong"}), 401, "unauthorized")
        assert client.post("/v1/predict", json={"texts": ["a"]}, headers={"X-API-Key": "s3cret"}).status_code == 200
        assert client.get("/healthz").status_code == 200  # probes need no key
        assert client.get("/").status_code == 200  # nor does the page (it asks for the key)


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/v1/predict", b'{"texts": ["unterminated'),  # not JSON
        ("POST", "/v1/predict", b'{"wrong": 1}'),  # JSON, wrong shape
        ("POST", "/v1/explain", b"[]"),
        ("POST", "/v1/predict", b"x" * 5_000),  # over max_body_bytes: not even read
        ("GET", "/v1/model", b""),
    ],
)
def test_the_key_is_checked_before_the_body(classifier: Classifier, method: str, path: str, body: bytes) -> None:
    # An unauthenticated client learns nothing about the API (no 422 details, no 413 limits).
    with client_for(classifier, api_key="s3cret", max_body_bytes=1_000) as client:
        r = client.request(method, path, content=body, headers={"content-type": "application/json"})
        error = assert_error(r, 401, "unauthorized")
        assert "X-API-Key" in error["message"]
        r = client.request(method, path, content=body, headers={"content-type": "application/json", "X-API-Key": "s3cret"})
        assert r.status_code != 401


@pytest.mark.parametrize(("host", "loopback"), [("127.0.0.1", True), ("localhost", True), ("::1", True),
                                                ("127.0.0.2", True), ("0.0.0.0", False), ("192.168.1.5", False),
                                                ("example.com", False)])
def test_binding_beyond_loopback_needs_a_key(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback
    check_bind(host, ServerSettings(api_key="k"))
    if loopback:
        check_bind(host, ServerSettings())
    else:
        with pytest.raises(ConfigError, match="API key"):
            check_bind(host, ServerSettings())


def test_cors_is_off_unless_asked(classifier: Classifier) -> None:
    origin = {"Origin": "http://elsewhere.example"}
    with client_for(classifier) as client:
        assert "access-control-allow-origin" not in client.post("/v1/predict", json={"texts": ["a"]}, headers=origin).headers
    with client_for(classifier, cors_origins=["http://elsewhere.example"]) as client:
        r = client.post("/v1/predict", json={"texts": ["a"]}, headers=origin)
        assert r.headers["access-control-allow-origin"] == "http://elsewhere.example"


@pytest.mark.parametrize("bad", [{"max_texts": 0}, {"max_wait_ms": -1}, {"request_timeout_s": 0}, {"api_key": " "},
                                 {"read_timeout_s": 0}, {"keep_alive_timeout_s": 0}, {"max_connections": 0}])
def test_bad_settings_fail_loudly(bad: dict) -> None:
    with pytest.raises(ConfigError, match=next(iter(bad))):
        ServerSettings(**bad)


def test_serve_command_help(capsys) -> None:
    with pytest.raises(SystemExit) as e:
        main(["serve", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "usage: classiformer serve" in out and "--max-wait-ms" in out and "--api-key" in out
    for flag in ("--read-timeout", "--keep-alive-timeout", "--max-connections"):
        assert flag in out


def test_serve_command_refuses_open_bind_without_key(served_model: Path, capsys, monkeypatch) -> None:
    monkeypatch.delenv("CLASSIFORMER_API_KEY", raising=False)
    assert main(["serve", str(served_model), "--host", "0.0.0.0"]) == 1
    assert "API key" in capsys.readouterr().err
    assert main(["serve", str(served_model.parent / "missing")]) == 1
    assert "no such model folder" in capsys.readouterr().err


# -- explanations -----------------------------------------------------------------------------------

def test_explain_returns_tokens_importance_and_attention(classifier: Classifier) -> None:
    text = "goal match the coach"
    with client_for(classifier) as client:
        r = client.post("/v1/explain", json={"text": text})
        assert r.status_code == 200, r.text
        body = r.json()
        assert_error(client.post("/v1/explain", json={"text": "!!!"}), 422)  # no tokens
    tokens = classifier.tokenizer.tokens(text)
    assert body["tokens"] == tokens
    assert body["label"] == classifier.predict([text])[0]
    assert set(body["importance"]) == {"rollout", "gradient"}
    assert all(len(s) == len(tokens) for s in body["importance"].values())
    assert body["special"] == [False] * len(tokens) and body["notes"] == []  # word tokens, no n-gram branch
    att = body["attention"]
    matrix = np.array(att["matrix"])
    assert matrix.shape == (len(tokens), len(tokens))
    np.testing.assert_allclose(matrix.sum(axis=1), 1.0, atol=1e-4)  # head-averaged rows stay distributions
    assert att["layers"] == classifier.meta.model["num_layers"] and att["heads"] == classifier.meta.model["num_heads"]


# -- shutdown ---------------------------------------------------------------------------------------

def test_sigterm_lets_in_flight_requests_finish(served_model: Path, tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}
    # Each batch waits 1 s for company, so the request below is still in flight when SIGTERM arrives.
    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys; from classiformer.cli import main; sys.exit(main())",
         "serve", str(served_model), "--port", str(port), "--max-wait-ms", "1000", "--threads", "1"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            assert time.monotonic() < deadline, "server did not become ready"
            time.sleep(0.1)
        result: dict = {}
        thread = threading.Thread(target=lambda: result.update(r=httpx.post(url + "/v1/predict", json={"texts": ["goal"]}, timeout=20)))
        thread.start()
        time.sleep(0.4)
        proc.send_signal(signal.SIGTERM)
        thread.join(timeout=20)
        assert result["r"].status_code == 200
        assert result["r"].json()["predictions"][0]["label"] in ("money", "sports", "tech")
        # uvicorn shuts down cleanly, then re-raises the signal it caught, as servers should.
        assert proc.wait(timeout=20) in (0, -signal.SIGTERM)
        log = proc.stdout.read() if proc.stdout else ""
        assert "model service stopped" in log and "Finished server process" in log, log
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
