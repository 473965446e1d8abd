"""Classification metrics computed from label ids: accuracy, macro-F1, per-class precision,
recall and F1, and the confusion matrix (rows = true class, columns = predicted class)."""

from __future__ import annotations

from typing import Any

import numpy as np


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_labels: int) -> np.ndarray:
    cm = np.zeros((num_labels, num_labels), dtype=np.int64)
    np.add.at(cm, (np.asarray(y_true), np.asarray(y_pred)), 1)
    return cm


def classification_report(y_true: np.ndarray, y_pred: np.ndarray, labels: list[str]) -> dict[str, Any]:
    cm = confusion_matrix(y_true, y_pred, len(labels))
    tp = np.diag(cm).astype(float)
    predicted = cm.sum(0).astype(float)
    actual = cm.sum(1).astype(float)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, actual, out=np.zeros_like(tp), where=actual > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    present = actual > 0
    return {
        "accuracy": float(tp.sum() / max(1, cm.sum())),
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "per_class": {
            label: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]), "support": int(actual[i])}
            for i, label in enumerate(labels)
        },
        "confusion_matrix": cm.tolist(),
        "labels": list(labels),
        "n": int(cm.sum()),
    }


def format_report(report: dict[str, Any]) -> str:
    """A plain-text table: per-class metrics, then the confusion matrix."""
    labels = report["labels"]
    w = max(10, *(len(lbl) for lbl in labels))
    lines = [f"{'class':<{w}}  precision  recall     f1  support"]
    for lbl in labels:
        m = report["per_class"][lbl]
        lines.append(f"{lbl:<{w}}  {m['precision']:9.4f}  {m['recall']:6.4f}  {m['f1']:.4f}  {m['support']:7d}")
    lines.append(f"{'accuracy':<{w}}  {report['accuracy']:.4f}   macro-F1 {report['macro_f1']:.4f}   n={report['n']}")
    lines.append("")
    lines.append("confusion matrix (rows: true, columns: predicted)")
    cw = max(6, *(len(lbl) for lbl in labels))
    lines.append(" " * w + "  " + " ".join(f"{lbl[:cw]:>{cw}}" for lbl in labels))
    for lbl, row in zip(labels, report["confusion_matrix"]):
        lines.append(f"{lbl:<{w}}  " + " ".join(f"{v:>{cw}d}" for v in row))
    return "\n".join(lines)


def format_calibration(report: dict[str, Any]) -> str:
    """One line: NLL and expected calibration error before and after temperature scaling."""
    if "nll" not in report:
        return ""
    return (
        f"calibration (temperature {report['temperature']:.3f}): NLL {report['nll_uncalibrated']:.4f} -> "
        f"{report['nll']:.4f}, ECE {report['ece_uncalibrated']:.4f} -> {report['ece']:.4f}"
    )
