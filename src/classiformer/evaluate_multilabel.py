"""Evaluation figures and thresholds comparison of a multi-label model (issue 13).

``evaluate`` computes a multi-label model's report with ``metrics.multilabel_report`` at the
checkpoint's tuned thresholds; this module adds what a person reads beside it: the same report at a
fixed 0.5 (so the gain from tuning on validation is visible, Lipton et al., 2014) and the three
figures: per-label F1 bars, precision-recall curves with the operating points, and the label
co-occurrence matrix of the true labels.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .metrics import multilabel_report
from .plots import plot_cooccurrence, plot_per_label_f1, plot_precision_recall

PLOT_FILES = {
    "per_label_f1": "per_label_f1.png",
    "precision_recall": "precision_recall.png",
    "label_cooccurrence": "label_cooccurrence.png",
}


def multilabel_evaluation(
    y_true: np.ndarray, scores: np.ndarray, labels: list[str], thresholds: np.ndarray | list[float] | float = 0.5
) -> dict[str, Any]:
    """``metrics.multilabel_report`` at ``thresholds`` (the tuned ones), plus the micro/macro
    F1, subset accuracy and Hamming loss at a fixed 0.5 under ``"at_0.5"``, to compare."""
    report = multilabel_report(y_true, scores, labels, np.asarray(thresholds, dtype=np.float64))
    fixed = multilabel_report(y_true, scores, labels, 0.5)
    report["at_0.5"] = {k: fixed[k] for k in ("micro_f1", "macro_f1", "weighted_f1", "subset_accuracy", "hamming_loss")}
    return report


def write_multilabel_plots(
    report: dict[str, Any], y_true: np.ndarray, scores: np.ndarray, run_dir: Path, top_curves: int = 6,
    top_cooccurrence: int = 30,
) -> dict[str, Path]:
    """Write ``per_label_f1.png``, ``precision_recall.png`` (micro-average and the ``top_curves``
    most frequent labels, tuned thresholds marked) and ``label_cooccurrence.png`` (the
    ``top_cooccurrence`` most frequent labels) into ``run_dir`` from a ``multilabel_report`` and
    the scores (N, L) and 0/1 targets (N, L) it was computed from. Returns the paths written."""
    labels = report["labels"]
    s, t = np.asarray(scores), np.asarray(y_true)
    if s.shape != t.shape or s.ndim != 2 or s.shape[1] != len(labels) or len(t) != report["n"]:
        raise ValueError(f"y_true {t.shape} and scores {s.shape} do not match the report's "
                         f"({report['n']} examples, {len(labels)} labels)")
    thresholds = [report["per_label"][lb]["threshold"] for lb in labels]
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    return {
        "per_label_f1": plot_per_label_f1(report["per_label"], run_dir / PLOT_FILES["per_label_f1"],
                                          micro_f1=report["micro_f1"], macro_f1=report["macro_f1"]),
        "precision_recall": plot_precision_recall(t, s, labels, run_dir / PLOT_FILES["precision_recall"],
                                                  thresholds=thresholds, top=top_curves),
        "label_cooccurrence": plot_cooccurrence(t, labels, run_dir / PLOT_FILES["label_cooccurrence"],
                                                top=top_cooccurrence),
    }
