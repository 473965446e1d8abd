"""Multi-label metrics: equal to scikit-learn's (``zero_division=0``) on random data."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from classiformer.metrics import (
    format_multilabel_report,
    hamming_loss,
    label_ranking_average_precision,
    multilabel_report,
    precision_recall_f1,
    subset_accuracy,
)


def random_case(seed: int, n: int = 200, labels: int = 7) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Truth with skewed label frequencies, one label that never occurs and one never predicted,
    scores correlated with the truth (with ties), and decisions at 0.5."""
    rng = np.random.default_rng(seed)
    prevalence = np.array([0.5, 0.3, 0.15, 0.05, 0.02, 0.0, 0.2])[:labels]
    y = (rng.random((n, labels)) < prevalence).astype(np.int64)
    scores = np.clip(0.35 * y + rng.random((n, labels)) * 0.7, 0, 1)
    scores = np.round(scores, 1)  # ties, as a real model's rounded probabilities give
    scores[:, 4] = np.minimum(scores[:, 4], 0.45)  # label 4: positives, never predicted
    pred = (scores >= 0.5).astype(np.int64)
    return y, pred, scores


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("average", ["micro", "macro", "weighted", None])
def test_precision_recall_f1_equal_sklearn(seed: int, average: str | None) -> None:
    y, pred, _ = random_case(seed)
    assert y[:, 5].sum() == 0 and pred[:, 4].sum() == 0  # the zero-division cases are exercised
    ours = precision_recall_f1(y, pred, average)
    theirs = skm.precision_recall_fscore_support(y, pred, average=average, zero_division=0)[:3]
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("seed", range(5))
def test_subset_accuracy_hamming_and_lrap_equal_sklearn(seed: int) -> None:
    y, pred, scores = random_case(seed)
    y[:3] = 0  # examples without labels
    y[3] = 1  # an example with every label
    assert subset_accuracy(y, pred) == pytest.approx(skm.accuracy_score(y, pred), abs=1e-12)
    assert hamming_loss(y, pred) == pytest.approx(skm.hamming_loss(y, pred), abs=1e-12)
    lrap = label_ranking_average_precision(y, scores, chunk=37)  # chunks that do not divide N
    assert lrap == pytest.approx(skm.label_ranking_average_precision_score(y, scores), abs=1e-12)


def test_lrap_by_hand() -> None:
    y = np.array([[1, 0, 0], [0, 0, 1]])
    s = np.array([[0.75, 0.5, 1.0], [1.0, 0.2, 0.1]])
    # Example 1: its label is ranked 2nd, 1 true label among the top 2 -> 1/2. Example 2: ranked
    # 3rd -> 1/3. Mean 5/12 (scikit-learn's documentation example).
    assert label_ranking_average_precision(y, s) == pytest.approx(5 / 12)


def test_weighted_average_without_any_positive_is_zero() -> None:
    y = np.zeros((4, 3), dtype=int)
    pred = np.eye(4, 3, dtype=int)
    assert precision_recall_f1(y, pred, "weighted") == (0.0, 0.0, 0.0)
    assert precision_recall_f1(y, pred, "weighted") == tuple(
        skm.precision_recall_fscore_support(y, pred, average="weighted", zero_division=0)[:3]
    )


def test_report_and_its_per_label_table() -> None:
    y, _, scores = random_case(0, labels=7)
    labels = [f"label{i}" for i in range(7)]
    thresholds = np.array([0.5, 0.4, 0.6, 0.5, 0.3, 0.5, 0.7])
    report = multilabel_report(y, scores, labels, thresholds)
    pred = scores >= thresholds
    assert report["micro_f1"] == pytest.approx(skm.f1_score(y, pred, average="micro", zero_division=0))
    assert report["macro_f1"] == pytest.approx(skm.f1_score(y, pred, average="macro", zero_division=0))
    f1 = skm.f1_score(y, pred, average=None, zero_division=0)
    for i, lb in enumerate(labels):
        row = report["per_label"][lb]
        assert row["support"] == y[:, i].sum() and row["predicted"] == pred[:, i].sum()
        assert row["f1"] == pytest.approx(f1[i]) and row["threshold"] == thresholds[i]
    text = format_multilabel_report(report, top=3)
    assert "micro" in text and "4 less frequent label(s)" in text
    # The three most frequent labels are listed, most frequent first.
    table = text.split("threshold\n")[1].splitlines()
    assert [line.split()[0] for line in table[:3]] == ["label0", "label1", "label6"]
    assert "global threshold" not in text
    assert "one global threshold" in format_multilabel_report({**report, "threshold_rule": "global"}, top=3)


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="only 0 and 1"):
        precision_recall_f1(np.array([[2, 0]]), np.array([[1, 0]]))
    with pytest.raises(ValueError, match="shape"):
        hamming_loss(np.zeros((2, 3)), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="average"):
        precision_recall_f1(np.zeros((2, 2)), np.zeros((2, 2)), "samples")
