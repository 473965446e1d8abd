"""Classification metrics computed from label ids: accuracy, macro-F1, per-class precision,
recall and F1, and the confusion matrix (rows = true class, columns = predicted class)."""

from __future__ import annotations

from collections.abc import Mapping
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


def most_confused(report: dict[str, Any], top: int = 10) -> list[tuple[str, str, int]]:
    """The ``top`` largest off-diagonal cells as (true label, predicted label, count), largest first
    (ties in label order); cells with no errors are left out."""
    labels = report["labels"]
    cm = np.asarray(report["confusion_matrix"], dtype=np.int64)
    off = cm.copy()
    np.fill_diagonal(off, 0)
    order = np.argsort(-off, axis=None, kind="stable")[:top]
    pairs = [(labels[k // len(labels)], labels[k % len(labels)], int(off.flat[k])) for k in order]
    return [p for p in pairs if p[2] > 0]


# Classes count as imbalanced when the largest has at least this many times the examples of the
# smallest (of those present). Then accuracy mostly measures the large classes: with 100/30/10/3%
# of AG News, always answering the largest class scores 70% accuracy and 0.21 macro-F1. Macro-F1
# weighs every class equally, so the summaries put it first.
IMBALANCE_RATIO = 3.0


def imbalance(counts: Mapping[str, int]) -> tuple[str, int, str, int] | None:
    """``(largest class, its count, smallest class, its count)`` when the classes present in
    ``counts`` are imbalanced (largest / smallest >= ``IMBALANCE_RATIO``), else None."""
    present = {lbl: int(n) for lbl, n in counts.items() if n > 0}
    if len(present) < 2:
        return None
    big = max(present, key=lambda lbl: present[lbl])
    small = min(present, key=lambda lbl: present[lbl])
    if present[big] < IMBALANCE_RATIO * present[small]:
        return None
    return big, present[big], small, present[small]


def imbalance_note(counts: Mapping[str, int], where: str = "") -> str | None:
    """A line saying the classes are imbalanced and why macro-F1 is the number to read, or None."""
    found = imbalance(counts)
    if found is None:
        return None
    big, nb, small, ns = found
    return (f"imbalanced classes{where}: {big} has {nb / ns:.1f}x the examples of {small} ({nb} vs {ns}; "
            f"imbalanced from {IMBALANCE_RATIO:g}x): accuracy mostly measures the large classes, macro-F1 weighs "
            "every class equally")


def format_report(
    report: dict[str, Any], width: int = 120, max_matrix_classes: int = 10, matrix_path: str | None = None
) -> str:
    """A plain-text table: per-class metrics, then the confusion matrix when it has at most
    ``max_matrix_classes`` classes and fits in ``width`` characters; otherwise the most-confused
    pairs (20 or 90 classes would make a matrix hundreds of columns wide) and ``matrix_path``,
    where the full matrix was drawn. When the classes are imbalanced (:func:`imbalance`), the
    table is led by macro-F1 beside accuracy and a note saying why."""
    labels = report["labels"]
    w = max(10, *(len(lbl) for lbl in labels))
    lines = []
    note = imbalance_note({lbl: report["per_class"][lbl]["support"] for lbl in labels}, " in this data")
    if note:
        lines += [f"macro-F1 {report['macro_f1']:.4f}   accuracy {report['accuracy']:.4f}", note, ""]
    lines.append(f"{'class':<{w}}  precision  recall     f1  support")
    for lbl in labels:
        m = report["per_class"][lbl]
        lines.append(f"{lbl:<{w}}  {m['precision']:9.4f}  {m['recall']:6.4f}  {m['f1']:.4f}  {m['support']:7d}")
    lines.append(f"{'accuracy':<{w}}  {report['accuracy']:.4f}   macro-F1 {report['macro_f1']:.4f}   n={report['n']}")
    lines.append("")
    cw = max(6, *(len(lbl) for lbl in labels))
    matrix = [" " * w + "  " + " ".join(f"{lbl[:cw]:>{cw}}" for lbl in labels)]
    for lbl, row in zip(labels, report["confusion_matrix"]):
        matrix.append(f"{lbl:<{w}}  " + " ".join(f"{v:>{cw}d}" for v in row))
    if len(labels) <= max_matrix_classes and max(len(x) for x in matrix) <= width:
        lines.append("confusion matrix (rows: true, columns: predicted)")
        lines.extend(matrix)
    else:
        pairs = most_confused(report)
        support = {lbl: report["per_class"][lbl]["support"] for lbl in labels}
        lines.append(f"most confused pairs (true -> predicted, of {len(labels)} classes)")
        tw = max((len(t) for t, _, _ in pairs), default=0)
        pw = max((len(p) for _, p, _ in pairs), default=0)
        for true, pred, count in pairs:
            lines.append(f"  {true:<{tw}} -> {pred:<{pw}}  {count:7d}  ({count / max(1, support[true]):.1%} of {true})")
        if not pairs:
            lines.append("  none: every example is predicted as its true class")
        where = matrix_path or "confusion_matrix.png"
        lines.append(f"the full {len(labels)}x{len(labels)} confusion matrix is drawn in {where} (and stored in metrics.json)")
    return "\n".join(lines)


def format_calibration(report: dict[str, Any]) -> str:
    """One line: NLL and expected calibration error before and after temperature scaling."""
    if "nll" not in report:
        return ""
    if report.get("problem_type") == "multi_label_classification":
        return (
            f"calibration (a temperature per label): NLL {report['nll_uncalibrated']:.4f} -> {report['nll']:.4f}, "
            f"ECE (mean per label) {report['ece_uncalibrated']:.4f} -> {report['ece']:.4f}, "
            f"micro ECE {report['micro_ece_uncalibrated']:.4f} -> {report['micro_ece']:.4f}"
        )
    return (
        f"calibration (temperature {report['temperature']:.3f}): NLL {report['nll_uncalibrated']:.4f} -> "
        f"{report['nll']:.4f}, ECE {report['ece_uncalibrated']:.4f} -> {report['ece']:.4f}"
    )


# ---------------------------------------------------------------------------------------------
# Multi-label metrics. Inputs are (N, L) arrays: 0/1 truth, 0/1 decisions, real-valued scores.
# Conventions follow scikit-learn with ``zero_division=0``: a ratio whose denominator is zero is 0
# (precision of a label never predicted, recall of a label with no positives, F1 of a label with
# neither), and macro averages run over every label column, those with no positives included.


def _indicator(y: np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(y)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be an (examples, labels) array, got shape {arr.shape}")
    if not np.isin(arr, (0, 1)).all():
        raise ValueError(f"{name} must hold only 0 and 1 (or booleans)")
    return arr.astype(bool)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    num, den = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


def multilabel_counts(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, np.ndarray]:
    """Per-label true positives, false positives, false negatives and support (true positives + false negatives)."""
    t, p = _indicator(y_true, "y_true"), _indicator(y_pred, "y_pred")
    if t.shape != p.shape:
        raise ValueError(f"y_true has shape {t.shape} but y_pred has shape {p.shape}")
    tp = (t & p).sum(0)
    fp = (~t & p).sum(0)
    fn = (t & ~p).sum(0)
    return {"tp": tp, "fp": fp, "fn": fn, "support": tp + fn}


def precision_recall_f1(
    y_true: np.ndarray, y_pred: np.ndarray, average: str | None = "micro"
) -> tuple[Any, Any, Any]:
    """Precision, recall and F1 of multi-label decisions: per label (``average=None``, arrays) or
    averaged (``"micro"``: pooled over all decisions; ``"macro"``: unweighted mean over labels;
    ``"weighted"``: mean weighted by each label's support). F1 is 2TP / (2TP + FP + FN)."""
    c = multilabel_counts(y_true, y_pred)
    tp, fp, fn = c["tp"], c["fp"], c["fn"]
    if average == "micro":
        tp, fp, fn = tp.sum(keepdims=True), fp.sum(keepdims=True), fn.sum(keepdims=True)
    precision = _ratio(tp, tp + fp)
    recall = _ratio(tp, tp + fn)
    f1 = _ratio(2 * tp, 2 * tp + fp + fn)
    if average is None:
        return precision, recall, f1
    if average == "micro":
        return float(precision[0]), float(recall[0]), float(f1[0])
    if average == "macro":
        return float(precision.mean()), float(recall.mean()), float(f1.mean())
    if average == "weighted":
        support = c["support"]
        if support.sum() == 0:
            return 0.0, 0.0, 0.0
        w = support / support.sum()
        return float(precision @ w), float(recall @ w), float(f1 @ w)
    raise ValueError(f"average must be 'micro', 'macro', 'weighted' or None, got {average!r}")


def subset_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Share of examples whose predicted label set is exactly the true one (empty sets included)."""
    t, p = _indicator(y_true, "y_true"), _indicator(y_pred, "y_pred")
    return float((t == p).all(1).mean()) if len(t) else 0.0


def hamming_loss(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Share of the N x L label decisions that are wrong."""
    t, p = _indicator(y_true, "y_true"), _indicator(y_pred, "y_pred")
    return float((t != p).mean()) if t.size else 0.0


def label_ranking_average_precision(y_true: np.ndarray, scores: np.ndarray, chunk: int = 1024) -> float:
    """Label-ranking average precision (as scikit-learn's ``label_ranking_average_precision_score``):
    for each example and each of its true labels j, the share of true labels among the labels
    scored at least as high as j; averaged over its true labels, then over examples. An example
    with no true label, or with every label true, scores 1."""
    t = _indicator(y_true, "y_true")
    s = np.asarray(scores, dtype=np.float64)
    if s.shape != t.shape:
        raise ValueError(f"y_true has shape {t.shape} but scores have shape {s.shape}")
    if not len(t):
        return 0.0
    n_labels = t.shape[1]
    total = 0.0
    for start in range(0, len(t), chunk):
        tc, sc = t[start:start + chunk], s[start:start + chunk]
        at_least = sc[:, None, :] >= sc[:, :, None]  # (B, j, k): label k scored >= label j
        rank = at_least.sum(2)  # (B, j) labels ranked at or above j (ties count against j)
        rank_true = (at_least & tc[:, None, :]).sum(2)  # (B, j) true labels among them
        n_true = tc.sum(1)
        per_example = np.where(tc, rank_true / rank, 0.0).sum(1) / np.maximum(n_true, 1)
        degenerate = (n_true == 0) | (n_true == n_labels)
        total += float(np.where(degenerate, 1.0, per_example).sum())
    return total / len(t)


def multilabel_report(
    y_true: np.ndarray, scores: np.ndarray, labels: list[str], thresholds: np.ndarray | float = 0.5
) -> dict[str, Any]:
    """Everything ``evaluate`` reports for a multi-label model: micro, macro and weighted
    precision/recall/F1, subset accuracy, Hamming loss, label-ranking average precision and a
    per-label table (support, predicted, precision, recall, F1, threshold). A label is predicted
    when its score is at least its threshold (one per label, or one for all)."""
    s = np.asarray(scores, dtype=np.float64)
    t = _indicator(y_true, "y_true")
    if s.shape != t.shape or s.shape[1] != len(labels):
        raise ValueError(f"y_true {t.shape} and scores {s.shape} must both be (examples, {len(labels)} labels)")
    th = np.broadcast_to(np.asarray(thresholds, dtype=np.float64), (len(labels),))
    pred = s >= th
    report: dict[str, Any] = {"problem_type": "multi_label_classification"}
    for average in ("micro", "macro", "weighted"):
        p, r, f = precision_recall_f1(t, pred, average)
        report.update({f"{average}_precision": p, f"{average}_recall": r, f"{average}_f1": f})
    p_l, r_l, f_l = precision_recall_f1(t, pred, None)
    support, predicted = t.sum(0), pred.sum(0)
    report.update({
        "subset_accuracy": subset_accuracy(t, pred),
        "hamming_loss": hamming_loss(t, pred),
        "label_ranking_average_precision": label_ranking_average_precision(t, s),
        "per_label": {
            label: {
                "support": int(support[i]), "predicted": int(predicted[i]), "precision": float(p_l[i]),
                "recall": float(r_l[i]), "f1": float(f_l[i]), "threshold": float(th[i]),
            }
            for i, label in enumerate(labels)
        },
        "labels": list(labels),
        "n": int(len(t)),
        "labels_per_example": float(t.sum(1).mean()) if len(t) else 0.0,
        "examples_without_labels": int((t.sum(1) == 0).sum()),
    })
    return report


def format_multilabel_report(report: dict[str, Any], top: int = 20) -> str:
    """A plain-text summary: the averaged metrics, then the per-label table of the ``top`` most
    frequent labels (so 90 labels do not flood a terminal; the full table is in the JSON report)."""
    lines = [
        f"{'':<10}  precision  recall      f1",
        *(
            f"{avg:<10}  {report[f'{avg}_precision']:9.4f}  {report[f'{avg}_recall']:6.4f}  {report[f'{avg}_f1']:.4f}"
            for avg in ("micro", "macro", "weighted")
        ),
        f"subset accuracy {report['subset_accuracy']:.4f}   Hamming loss {report['hamming_loss']:.4f}   "
        f"LRAP {report['label_ranking_average_precision']:.4f}   n={report['n']} "
        f"({report['labels_per_example']:.2f} labels per example, {report['examples_without_labels']} without any)",
        "",
    ]
    if report.get("threshold_rule") == "global":  # chosen out of fold on validation (thresholds.choose_thresholds)
        lines.insert(-1, "decisions at one global threshold (it beat per-label thresholds out of fold on validation)")
    elif report.get("threshold_rule") == "fixed":
        lines.insert(-1, "decisions at 0.5 for every label (untuned: it beat tuned thresholds out of fold on validation)")
    per_label = report["per_label"]
    shown = sorted(report["labels"], key=lambda lb: (-per_label[lb]["support"], lb))[:top]
    w = max(10, *(len(lb) for lb in shown)) if shown else 10
    lines.append(f"{'label':<{w}}  support  precision  recall      f1  threshold")
    for lb in shown:
        m = per_label[lb]
        lines.append(
            f"{lb:<{w}}  {m['support']:7d}  {m['precision']:9.4f}  {m['recall']:6.4f}  {m['f1']:.4f}  {m['threshold']:9.4f}"
        )
    if len(report["labels"]) > len(shown):
        lines.append(f"... {len(report['labels']) - len(shown)} less frequent label(s) in the JSON report")
    return "\n".join(lines)


def cut_counts(y_true: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """The rule ``score >= t`` at every distinct score ``t`` of binary ``y_true`` (N,) and
    ``scores`` (N,), highest first: ``(scores sorted high to low, the position of the last example
    of each distinct score, true and false positives at each such cut, the number of positives)``.
    Only cuts between distinct scores are rules a threshold can express."""
    y = np.asarray(y_true).astype(bool).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    if y.shape != s.shape:
        raise ValueError(f"{y.size} labels but {s.size} scores")
    if s.size == 0:
        empty = np.zeros(0, dtype=np.int64)
        return s, empty, empty, empty, 0
    order = np.argsort(-s, kind="stable")
    s, y = s[order], y[order]
    cut = np.flatnonzero(np.r_[s[:-1] != s[1:], True])
    return s, cut, np.cumsum(y)[cut], np.cumsum(~y)[cut], int(y.sum())


def precision_recall_curve(y_true: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """``(precision, recall, thresholds, average precision)`` of the rule ``score >= t`` for every
    distinct score ``t`` of binary ``y_true`` (N,) and ``scores`` (N,), highest threshold first;
    average precision as scikit-learn defines it (sum of precision x recall steps). No positives:
    empty curves and AP 0."""
    s, cut, tp, fp, positives = cut_counts(y_true, scores)
    if positives == 0:
        empty = np.zeros(0)
        return empty, empty, empty, 0.0
    precision = tp / (tp + fp)
    recall = tp / positives
    ap = float(np.sum(np.diff(np.r_[0.0, recall]) * precision))
    return precision, recall, s[cut], ap
