"""``predict --top-k K`` and ``top_k`` in /v1/predict: each text's K best labels with their scores,
for single- and multi-label models, in the terminal, CSV and JSONL; without it, every label's score."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

import classiformer
from classiformer import Classifier, read_dataset, resolve_config
from classiformer.cli import main
from classiformer.server import create_app

from .conftest import make_texts
from .test_multilabel_fit import write

TEXTS = ["goal team stock market", "chip robot code", "the a of today", "bank price oil shares goal"]


@pytest.fixture(scope="module")
def single(tmp_path_factory: pytest.TempPathFactory) -> Classifier:
    folder = tmp_path_factory.mktemp("top-k") / "run"
    classiformer.fit(resolve_config("tiny", train={"epochs": 2, "batch_size": 16, "lr": 3e-2}), make_texts(120, seed=3),
                     folder, progress=False)
    return Classifier.load(folder)


def rows(capsys: pytest.CaptureFixture[str]) -> list[dict]:
    return [json.loads(x) for x in capsys.readouterr().out.splitlines()]


def expected_top(clf: Classifier, texts: list[str], k: int) -> list[list[tuple[str, float]]]:
    """The k best labels by hand: sorted by score, ties in label order."""
    out = []
    for p in clf.predict_proba(texts):
        ranked = sorted(range(len(p)), key=lambda j: (-p[j], j))[:k]
        out.append([(clf.labels[j], float(p[j])) for j in ranked])
    return out


@pytest.mark.parametrize("which", ["single", "multi"])
def test_top_k_is_the_k_best_labels_with_their_scores(which: str, single: Classifier, multilabel_classifier: Classifier) -> None:
    clf = single if which == "single" else multilabel_classifier
    proba = clf.predict_proba(TEXTS)
    for k in (1, 2):
        got = clf.top_k(proba, k)
        want = expected_top(clf, TEXTS, k)
        assert [[lbl for lbl, _ in r] for r in got] == [[lbl for lbl, _ in r] for r in want]
        np.testing.assert_allclose([[s for _, s in r] for r in got], [[s for _, s in r] for r in want], rtol=1e-6)
    assert [len(r) for r in clf.top_k(proba, 99)] == [len(clf.labels)] * len(TEXTS)  # more than there are: all
    # Ties rank in label order, so the output does not depend on the sort's whims.
    assert clf.top_k(np.full((1, len(clf.labels)), 0.5), 2) == [[(clf.labels[0], 0.5), (clf.labels[1], 0.5)]]
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="top_k"):
            clf.top_k(proba, bad)  # type: ignore[arg-type]


def test_cli_top_k_single_label(single: Classifier, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = str(single.path)
    assert main(["predict", model, *TEXTS, "--top-k", "2"]) == 0
    out = rows(capsys)
    want = expected_top(single, TEXTS, 2)
    assert [list(r) for r in out] == [["line", "label", "top_k"]] * len(TEXTS)  # no 'probabilities' of every class
    assert [[b["label"] for b in r["top_k"]] for r in out] == [[lbl for lbl, _ in w] for w in want]
    assert all(r["top_k"][0]["label"] == r["label"] for r in out)  # the best label is the prediction
    assert all(r["top_k"][0]["score"] >= r["top_k"][1]["score"] for r in out)
    # The same rows in a JSONL file; CSV has top1_label, top1_score, top2_label, top2_score.
    source = tmp_path / "texts.txt"
    source.write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    jsonl, table = tmp_path / "p.jsonl", tmp_path / "p.csv"
    assert main(["predict", model, "--input", str(source), "--output", str(jsonl), "--top-k", "2", "--no-progress"]) == 0
    assert main(["predict", model, "--input", str(source), "--output", str(table), "--top-k", "2", "--no-progress"]) == 0
    capsys.readouterr()
    assert [json.loads(x) for x in jsonl.read_text(encoding="utf-8").splitlines()] == out
    with table.open(newline="", encoding="utf-8") as f:
        header, *body = list(csv.reader(f))
    assert header == ["line", "label", "top1_label", "top1_score", "top2_label", "top2_score"]
    assert [[r[2], r[4]] for r in body] == [[b["label"] for b in r["top_k"]] for r in out]
    assert [float(r[3]) for r in body] == pytest.approx([r["top_k"][0]["score"] for r in out], abs=1e-6)


def test_cli_top_k_multi_label(multilabel_classifier: Classifier, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    clf = multilabel_classifier
    model = str(clf.path)
    texts = read_dataset(write(tmp_path / "t.jsonl", 30, seed=4)).texts
    assert main(["predict", model, *texts, "--top-k", "2"]) == 0
    out = rows(capsys)
    assert [r["labels"] for r in out] == clf.predict(texts)  # the label set at the thresholds stays
    assert [[(b["label"], b["score"]) for b in r["top_k"]] for r in out] == [
        [(lbl, pytest.approx(s, abs=1e-6)) for lbl, s in w] for w in expected_top(clf, texts, 2)
    ]
    # A 3-label model asked for 5: each text's 3 labels, and CSV columns for the 3 there are.
    table = tmp_path / "p.csv"
    source = tmp_path / "t.txt"
    source.write_text("\n".join(texts) + "\n", encoding="utf-8")
    assert main(["predict", model, "--input", str(source), "--output", str(table), "--top-k", "5", "--no-progress"]) == 0
    with table.open(newline="", encoding="utf-8") as f:
        header, *body = list(csv.reader(f))
    assert header == ["line", "labels", *(c for i in (1, 2, 3) for c in (f"top{i}_label", f"top{i}_score"))]
    assert [r[1] for r in body] == ["|".join(s) for s in clf.predict(texts)]


def test_without_top_k_a_multi_label_row_has_its_label_set_and_every_score(
    multilabel_classifier: Classifier, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clf = multilabel_classifier
    texts = read_dataset(write(tmp_path / "t.jsonl", 30, seed=4)).texts
    assert main(["predict", str(clf.path), *texts]) == 0
    out = rows(capsys)
    proba = clf.predict_proba(texts)
    thresholds = np.asarray(clf.thresholds.per_label)
    for r, p in zip(out, proba):
        assert list(r["probabilities"]) == clf.labels
        np.testing.assert_allclose(list(r["probabilities"].values()), p, atol=1e-6)
        assert r["labels"] == [lbl for lbl, x, t in zip(clf.labels, p, thresholds) if x >= t]


@pytest.mark.parametrize("bad", ["0", "-2", "two"])
def test_cli_rejects_a_bad_top_k(single: Classifier, bad: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["predict", str(single.path), "goal", "--top-k", bad])
    assert e.value.code == 2
    assert "--top-k" in capsys.readouterr().err


@pytest.mark.parametrize("which", ["single", "multi"])
def test_server_top_k(which: str, single: Classifier, multilabel_classifier: Classifier) -> None:
    clf = single if which == "single" else multilabel_classifier
    key = clf.output_key
    with TestClient(create_app(clf)) as client:
        plain = client.post("/v1/predict", json={"texts": TEXTS}).json()["predictions"]
        top = client.post("/v1/predict", json={"texts": TEXTS, "top_k": 2})
        bad = [client.post("/v1/predict", json={"texts": TEXTS, "top_k": k}).status_code for k in (0, -1, "many", True, "2")]
    assert all(set(p) == {key, "probabilities"} for p in plain)  # the web page's answer: every label scored
    assert top.status_code == 200, top.text
    got = top.json()["predictions"]
    assert all(set(p) == {key, "top_k"} for p in got)
    assert [p[key] for p in got] == [p[key] for p in plain] == clf.predict(TEXTS)
    assert [[(b["label"], b["score"]) for b in p["top_k"]] for p in got] == [
        [(lbl, pytest.approx(s, abs=1e-6)) for lbl, s in w] for w in expected_top(clf, TEXTS, 2)
    ]
    assert bad == [422] * 5
