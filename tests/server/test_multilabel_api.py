"""/v1/predict on a multi-label model: each text's label set at the tuned thresholds, as the library decides."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from classiformer import Classifier, read_dataset
from classiformer.server import create_app

from ..test_multilabel_fit import write


def test_predict_answers_label_sets_equal_to_the_librarys(multilabel_classifier: Classifier, tmp_path: Path) -> None:
    texts = read_dataset(write(tmp_path / "t.jsonl", 40, seed=5)).texts
    expected = multilabel_classifier.predict(texts)
    assert any(len(s) > 1 for s in expected) and [] in expected  # the toy task has overlaps and empty rows
    with TestClient(create_app(multilabel_classifier)) as client:
        r = client.post("/v1/predict", json={"texts": texts})
    assert r.status_code == 200, r.text
    predictions = r.json()["predictions"]
    assert [p["labels"] for p in predictions] == expected
    assert all("label" not in p and set(p["probabilities"]) == set(multilabel_classifier.labels) for p in predictions)


def test_model_info_names_the_problem_type(multilabel_classifier: Classifier, classifier: Classifier) -> None:
    """The page words a model's outputs by it: labels (a set per text) or classes (one per text)."""
    with TestClient(create_app(multilabel_classifier)) as client:
        assert client.get("/v1/model").json()["problem_type"] == "multi_label_classification"
    with TestClient(create_app(classifier)) as client:
        assert client.get("/v1/model").json()["problem_type"] == "single_label_classification"
