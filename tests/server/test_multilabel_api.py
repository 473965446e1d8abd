"""/v1/predict on a multi-label model: each text's label set at the tuned thresholds, as the library decides."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from classiformer import Classifier, fit, read_dataset
from classiformer.server import create_app

from ..test_multilabel_fit import config, write


@pytest.fixture(scope="module")
def multilabel(tmp_path_factory: pytest.TempPathFactory) -> Classifier:
    tmp = tmp_path_factory.mktemp("mlserve")
    fit(config(), read_dataset(write(tmp / "train.jsonl", 300, seed=0)), tmp / "run", progress=False)
    return Classifier.load(tmp / "run")


def test_predict_answers_label_sets_equal_to_the_librarys(multilabel: Classifier, tmp_path: Path) -> None:
    texts = read_dataset(write(tmp_path / "t.jsonl", 40, seed=5)).texts
    expected = multilabel.predict(texts)
    assert any(len(s) > 1 for s in expected) and [] in expected  # the toy task has overlaps and empty rows
    with TestClient(create_app(multilabel)) as client:
        r = client.post("/v1/predict", json={"texts": texts})
    assert r.status_code == 200, r.text
    predictions = r.json()["predictions"]
    assert [p["labels"] for p in predictions] == expected
    assert all("label" not in p and set(p["probabilities"]) == set(multilabel.labels) for p in predictions)
