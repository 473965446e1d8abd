"""fit() on multi-label files: label lists, zero-label rows, label order, thresholds stored, label sets predicted."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from classiformer import Classifier, fit, read_dataset, resolve_config
from classiformer.checkpoint import MULTI_LABEL, read_meta
from classiformer.config import ConfigError
from classiformer.data import TextDataset
from classiformer.metrics import multilabel_report
from classiformer.training import encode_labels

from .conftest import make_texts
from .test_multilabel_training import NAMES, multilabel_texts


def write(path: Path, n: int, seed: int, reverse: bool = False) -> Path:
    texts, sets = multilabel_texts(n, seed)
    path.write_text("".join(json.dumps({"text": t, "labels": s[::-1] if reverse else s}) + "\n" for t, s in zip(texts, sets)))
    return path


def config(family_preset: str = "tiny", **train: object):
    model = {"embed_dim": 18, "num_heads": 3, "ff_dim": 23, "hidden_dim": 11, "dropout": 0.0}
    if family_preset == "rnn-attention":
        model = {"embed_dim": 16, "hidden_dim": 12, "attention_dim": 10, "dropout": 0.0}
    return resolve_config(family_preset, model=model, tokenizer={"vocab_size": 60, "max_length": 12},
                          train={"epochs": 12, "batch_size": 16, "lr": 3e-2, "patience": 0, **train})


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("mlfit")
    out = tmp / "run"
    fit(config(pos_weight="auto"), read_dataset(write(tmp / "train.jsonl", 400, seed=0)), out, progress=False)
    return out


def test_trains_stores_thresholds_and_predicts_label_sets(run: Path, tmp_path: Path) -> None:
    meta = read_meta(run / "best")
    assert meta.problem_type == MULTI_LABEL and meta.labels == NAMES
    assert meta.thresholds is not None and meta.temperatures is not None
    # About half of the texts carry each topic: negatives / positives near 1.
    assert set(meta.extra["pos_weight"]) == set(NAMES) and all(0.5 < w < 2 for w in meta.extra["pos_weight"].values())
    assert meta.extra["thresholds"]["n"] == 40  # the iteratively stratified 10% validation split
    clf = Classifier.load(run)
    # The test file lists each text's labels in the other order: same columns.
    test = read_dataset(write(tmp_path / "test.jsonl", 150, seed=9, reverse=True))
    assert test.label_sets is not None and any(not s for s in test.label_sets)
    y = encode_labels(test, clf.labels)
    report = multilabel_report(y, clf.predict_proba(test.texts), clf.labels, np.array(clf.thresholds.per_label))
    assert report["micro_f1"] > 0.9 and report["macro_f1"] > 0.9 and report["subset_accuracy"] > 0.7
    predicted = clf.predict(test.texts)
    assert all(isinstance(p, list) for p in predicted) and [] in predicted
    assert sum(sorted(p) == sorted(s) for p, s in zip(predicted, test.label_sets)) / len(test) == report["subset_accuracy"]


def test_label_order_never_changes_the_columns() -> None:
    a = TextDataset(["x", "y"], None, label_sets=[["sports", "money"], []])
    b = TextDataset(["x", "y"], None, label_sets=[["money", "sports"], []])
    assert encode_labels(a, NAMES).tolist() == encode_labels(b, NAMES).tolist() == [[1, 1, 0], [0, 0, 0]]


def test_rnn_attention_learns_the_toy_task_too(tmp_path: Path) -> None:
    data = read_dataset(write(tmp_path / "train.jsonl", 300, seed=0))
    result = fit(config("rnn-attention", epochs=10), data, tmp_path / "rnn", progress=False)
    assert read_meta(result.best_dir).problem_type == MULTI_LABEL
    assert result.history[-1]["val_micro_f1"] > 0.85


def test_forced_multi_label_and_weights_that_do_not_fit(tmp_path: Path) -> None:
    single = make_texts(90, seed=1)
    result = fit(config(epochs=1, multi_label=True), single, tmp_path / "forced", progress=False)
    assert read_meta(result.best_dir).multi_label
    with pytest.raises(ConfigError, match="class weights are for single-label models"):
        fit(config(epochs=1, multi_label=True, class_weight="balanced"), single, tmp_path / "a", progress=False)
    with pytest.raises(ConfigError, match="pos_weight is for multi-label models"):
        fit(config(epochs=1, pos_weight="auto"), single, tmp_path / "b", progress=False)
