"""evaluate on a multi-label model: the report at the checkpoint's thresholds and at 0.5, per-label
calibration, the three figures instead of a confusion matrix, and clear errors on mismatched data."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from classiformer.data.datasets import DataError, TextDataset
from classiformer.evaluate import evaluate, write_evaluation
from classiformer.metrics import multilabel_report
from classiformer.predict import Classifier
from classiformer.training import TrainResult, calibrate_best

from .test_multilabel_training import NAMES, indicator, multilabel_texts, trained  # noqa: F401  (fixture)


@pytest.fixture
def classifier(trained: tuple[TrainResult, object], tmp_path: Path) -> Classifier:  # noqa: F811
    result, val = trained
    best = tmp_path / "best"
    shutil.copytree(result.best_dir, best)
    calibrate_best(best, val, 64, torch.device("cpu"))  # per-label temperatures and tuned thresholds
    return Classifier.load(best)


def test_evaluate_reports_tuned_thresholds_and_writes_the_plots(classifier: Classifier, tmp_path: Path) -> None:
    texts, sets = multilabel_texts(120, seed=5)
    # Label lists in another order than the model's: columns follow the model's labels.
    data = TextDataset(texts, None, "<toy test>", label_sets=[list(reversed(s)) for s in sets])
    report = evaluate(classifier, data, progress=False)
    proba = classifier.predict_proba(texts)
    expected = multilabel_report(indicator(sets), proba, NAMES, np.asarray(classifier.thresholds.per_label))
    for key in ("micro_f1", "macro_f1", "subset_accuracy", "hamming_loss", "label_ranking_average_precision"):
        assert report[key] == pytest.approx(expected[key]), key
    assert report["per_label"]["money"]["threshold"] == pytest.approx(classifier.thresholds.per_label[0])
    assert report["at_0.5"]["macro_f1"] == pytest.approx(multilabel_report(indicator(sets), proba, NAMES)["macro_f1"])
    # 3 per-label cuts, or none where the global one did better out of fold (see test_multilabel_training)
    assert report["thresholds_tuned"] == sum(classifier.thresholds.tuned) == (3 if classifier.thresholds.rule == "per_label" else 0)
    assert report["ece"] >= 0 and report["nll"] > 0
    paths = write_evaluation(report, tmp_path / "eval")
    assert {p.name for p in paths.values()} == {"per_label_f1.png", "precision_recall.png", "label_cooccurrence.png",
                                                "metrics.json"}
    saved = json.loads(paths["metrics"].read_text())
    assert "scores" not in saved and "targets" not in saved  # arrays for the plots, not metrics
    assert saved["micro_f1"] == pytest.approx(report["micro_f1"]) and saved["problem_type"] == "multi_label_classification"


def test_single_label_data_counts_as_one_label_sets(classifier: Classifier) -> None:
    data = TextDataset(["goal team", "stock market bank"], ["sports", "money"], "<one label each>")
    report = evaluate(classifier, data, progress=False)
    assert report["n"] == 2 and report["labels_per_example"] == 1.0


def test_bad_data_is_named(classifier: Classifier) -> None:
    with pytest.raises(DataError, match=r"<toy>:2: label 'weather' was not seen in training"):
        evaluate(classifier, TextDataset(["a", "b"], None, "<toy>", lines=[1, 2], label_sets=[["money"], ["weather"]]),
                 progress=False)
    with pytest.raises(DataError, match="<unlabelled>: evaluation needs labelled data"):
        evaluate(classifier, TextDataset(["a"], None, "<unlabelled>"), progress=False)
    report = evaluate(classifier, TextDataset(["goal"], None, "<x>", label_sets=[["sports"]]), progress=False)
    del report["scores"]
    with pytest.raises(ValueError, match="needs its 'targets' and 'scores'"):
        write_evaluation(report, Path("unused"))
