"""Calibrated probabilities by temperature scaling (Guo, Pleiss, Sun & Weinberger, 2017,
"On Calibration of Modern Neural Networks").

One scalar T > 0 divides the logits before the softmax. It is fitted by minimising the negative
log-likelihood of held-out labels, so it never changes which class wins, only how sure the model
says it is. Expected calibration error (ECE) is measured with equal-width confidence bins.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

from .checkpoint import read_meta, write_meta
from .data.datasets import DataError, TextDataset, encode_labels
from .inference import sigmoid, softmax
from .thresholds import Thresholds

if TYPE_CHECKING:
    from .predict import Classifier

log = logging.getLogger(__name__)


def nll(logits: np.ndarray, labels: np.ndarray, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of ``labels`` (N,) under ``softmax(logits / temperature)``."""
    z = torch.from_numpy(np.asarray(logits, dtype=np.float64)) / temperature
    return float(F.cross_entropy(z, torch.from_numpy(np.asarray(labels, dtype=np.int64))))


def fit_temperature(logits: np.ndarray, labels: np.ndarray, max_iter: int = 200) -> float:
    """The temperature that minimises the NLL of ``labels`` given ``logits`` (N, C).

    Optimised over log T (so T stays positive) with L-BFGS in float64; the result is clamped to
    [0.05, 20] so that a degenerate validation set cannot produce an absurd value."""
    if len(logits) == 0:
        raise ValueError("cannot fit a temperature on zero examples")
    z = torch.from_numpy(np.asarray(logits, dtype=np.float64))
    y = torch.from_numpy(np.asarray(labels, dtype=np.int64))
    t = _fit_log_temperature(lambda log_t: F.cross_entropy(z / log_t.exp(), y), max_iter)
    if not math.isfinite(t):
        log.warning("temperature fit diverged; keeping T = 1")
        return 1.0
    if t in (0.05, 20.0):
        log.warning("temperature %.2f is at the edge of its range: the held-out set is probably too small or "
                    "perfectly separated; probabilities will be extreme", t)
    return t


def reliability(proba: np.ndarray, labels: np.ndarray, bins: int = 15) -> dict[str, Any]:
    """Per-bin confidence, accuracy and count (equal-width bins over the top-class probability),
    and the expected calibration error: sum over bins of |accuracy - confidence| weighted by
    the share of examples in the bin."""
    proba = np.asarray(proba, dtype=np.float64)
    labels = np.asarray(labels)
    conf = proba.max(1)
    correct = (proba.argmax(1) == labels).astype(np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, bins - 1)
    count = np.bincount(which, minlength=bins).astype(np.int64)
    conf_sum = np.bincount(which, weights=conf, minlength=bins)
    acc_sum = np.bincount(which, weights=correct, minlength=bins)
    nz = count > 0
    mean_conf = np.divide(conf_sum, count, out=np.zeros(bins), where=nz)
    mean_acc = np.divide(acc_sum, count, out=np.zeros(bins), where=nz)
    ece = float((np.abs(mean_acc - mean_conf) * count).sum() / max(1, len(labels)))
    return {
        "ece": ece,
        "edges": edges.tolist(),
        "confidence": mean_conf.tolist(),
        "accuracy": mean_acc.tolist(),
        "count": count.tolist(),
    }


def ece(proba: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    """Expected calibration error of ``proba`` (N, C) against ``labels`` (N,)."""
    return float(reliability(proba, labels, bins)["ece"])


def calibration_report(logits: np.ndarray, labels: np.ndarray, temperature: float, bins: int = 15) -> dict[str, Any]:
    """NLL and ECE before (T = 1) and after temperature scaling, with the reliability bins of both."""
    before = reliability(softmax(logits, 1.0), labels, bins)
    after = reliability(softmax(logits, temperature), labels, bins)
    return {
        "temperature": float(temperature),
        "nll_uncalibrated": nll(logits, labels, 1.0),
        "nll": nll(logits, labels, temperature),
        "ece_uncalibrated": before["ece"],
        "ece": after["ece"],
        "reliability_uncalibrated": before,
        "reliability": after,
    }


def store_temperature(folder: Any, logits: np.ndarray, labels: np.ndarray, source: str) -> dict[str, Any]:
    """Fit a temperature on held-out ``logits``/``labels`` and write it into the checkpoint
    ``folder``'s metadata (``temperature``, used by ``Classifier.predict_proba``, and a summary
    under ``extra["calibration"]``). Returns the calibration report."""
    t = fit_temperature(logits, labels)
    report = calibration_report(logits, labels, t)
    meta = read_meta(folder)
    meta.temperature = t
    meta.extra["calibration"] = {
        "source": source,
        "n": int(len(labels)),
        **{k: report[k] for k in ("temperature", "nll_uncalibrated", "nll", "ece_uncalibrated", "ece")},
    }
    write_meta(folder, meta)
    log.info(
        "temperature %.3f fitted on %s (%d examples): NLL %.4f -> %.4f, ECE %.4f -> %.4f",
        t, source, len(labels), report["nll_uncalibrated"], report["nll"], report["ece_uncalibrated"], report["ece"],
    )
    return report


def calibrate(clf: Classifier, dataset: TextDataset, progress: bool = False) -> dict[str, Any]:
    """Fit ``clf``'s temperature on the labelled ``dataset`` and store it in its checkpoint (and
    in ``clf``, so its probabilities are calibrated from now on). Returns the calibration report."""
    if clf.path is None:
        raise ValueError("this classifier was not loaded from a checkpoint folder; nowhere to store the temperature")
    if clf.multi_label:  # a temperature per label, then the thresholds, on this held-out data
        data = dataset.as_multi_label()
        if data.label_sets is None:
            raise DataError(f"{dataset.source}: calibration needs labelled data")
        targets = encode_labels(data, clf.labels)  # (N, L), columns in the model's label order
        report = store_label_calibration(clf.path, clf.logits(data.texts, progress=progress), targets, dataset.source)
        clf.meta.temperatures, clf.meta.thresholds = report["temperatures"], report["thresholds"]
        clf.thresholds = Thresholds.from_dict(report["thresholds"])
        return report
    if dataset.labels is None:
        raise DataError(f"{dataset.source}: has label lists (multi-label data), but this model picks one class per "
                        "text" if dataset.label_sets is not None else f"{dataset.source}: calibration needs labels")
    labels = encode_labels(dataset, clf.labels)
    report = store_temperature(clf.path, clf.logits(dataset.texts, progress=progress), labels, dataset.source)
    clf.meta.temperature = report["temperature"]
    return report


# ---------------------------------------------------------------------------------------------
# Multi-label models: one temperature per label for the sigmoid outputs. Each label's decision is
# its own binary problem, so its T_l is fitted on its own binary NLL; as with softmax scaling, a
# temperature never moves a score across 0.5 (the sign of the logit is kept), only its confidence.
# ECE is measured per label on the probability of the positive class ("class-wise" ECE, Nixon et
# al., 2019, "Measuring Calibration in Deep Learning"; Kull et al., 2019): over equal-width bins,
# |share of positives - mean probability|, weighted by the share of examples in the bin.


def _label_arrays(logits: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    z = np.asarray(logits, dtype=np.float64)
    y = np.asarray(targets, dtype=np.float64)
    if z.ndim != 2 or z.shape != y.shape:
        raise ValueError(f"logits {z.shape} and targets {y.shape} must be the same (examples, labels) shape")
    return z, y


def label_nll(logits: np.ndarray, targets: np.ndarray, temperatures: np.ndarray | float = 1.0) -> np.ndarray:
    """Per-label mean binary negative log-likelihood (L,) of 0/1 ``targets`` (N, L) under
    ``sigmoid(logits / T_l)``."""
    z, y = _label_arrays(logits, targets)
    t = torch.from_numpy(np.broadcast_to(np.asarray(temperatures, dtype=np.float64), (z.shape[1],)).copy())
    loss = F.binary_cross_entropy_with_logits(torch.from_numpy(z) / t, torch.from_numpy(y), reduction="none")
    return loss.mean(0).numpy()


def _fit_log_temperature(loss: Callable[[torch.Tensor], torch.Tensor], max_iter: int) -> float:
    """Minimise ``loss(log T)`` over log T (so T stays positive) with L-BFGS in float64; T clamped
    to [0.05, 20]."""
    log_t = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.5, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        value = loss(log_t)
        value.backward()
        return value

    opt.step(closure)
    return float(log_t.detach().exp().clamp(0.05, 20.0))


def _fit_binary_temperature(z: torch.Tensor, y: torch.Tensor, max_iter: int) -> float:
    return _fit_log_temperature(lambda log_t: F.binary_cross_entropy_with_logits(z / log_t.exp(), y), max_iter)


def fit_label_temperatures(
    logits: np.ndarray, targets: np.ndarray, min_examples: int = 3, max_iter: int = 100
) -> np.ndarray:
    """Per-label temperatures (L,) minimising each label's binary NLL on held-out ``logits`` (N, L).

    A label with fewer than ``min_examples`` positives or negatives keeps T = 1: with none of one
    kind the NLL rewards an extreme T (certainty), and a handful of examples fit noise. Each T is clamped to
    [0.05, 20] like the softmax temperature."""
    z, y = _label_arrays(logits, targets)
    if len(z) == 0:
        raise ValueError("cannot fit temperatures on zero examples")
    out = np.ones(z.shape[1])
    positives = y.sum(0)
    for j in range(z.shape[1]):
        if positives[j] < min_examples or len(y) - positives[j] < min_examples:
            continue
        t = _fit_binary_temperature(torch.from_numpy(z[:, j]), torch.from_numpy(y[:, j]), max_iter)
        out[j] = t if math.isfinite(t) else 1.0
    return out


def binary_ece(proba: np.ndarray, targets: np.ndarray, bins: int = 15) -> float:
    """ECE of positive-class probabilities ``proba`` against 0/1 ``targets`` (any shape, pooled)."""
    p = np.asarray(proba, dtype=np.float64).ravel()
    y = np.asarray(targets, dtype=np.float64).ravel()
    if p.shape != y.shape:
        raise ValueError(f"{p.size} probabilities but {y.size} targets")
    if not len(p):
        return 0.0
    which = np.clip(np.digitize(p, np.linspace(0.0, 1.0, bins + 1)[1:-1], right=True), 0, bins - 1)
    count = np.bincount(which, minlength=bins)
    gap = np.abs(np.bincount(which, weights=y, minlength=bins) - np.bincount(which, weights=p, minlength=bins))
    # sum_b n_b / N * |mean_y_b - mean_p_b| = sum_b |sum_y_b - sum_p_b| / N
    return float(gap[count > 0].sum() / len(p))


def label_ece(proba: np.ndarray, targets: np.ndarray, bins: int = 15) -> dict[str, Any]:
    """ECE per label (list), their mean, and the micro ECE pooled over all N x L decisions."""
    p, y = _label_arrays(proba, targets)
    per_label = [binary_ece(p[:, j], y[:, j], bins) for j in range(p.shape[1])]
    return {"per_label": per_label, "mean": float(np.mean(per_label)) if per_label else 0.0, "micro": binary_ece(p, y, bins)}


def multilabel_calibration_report(
    logits: np.ndarray, targets: np.ndarray, temperatures: np.ndarray, bins: int = 15
) -> dict[str, Any]:
    """Mean binary NLL and ECE (mean per label, and micro) before (T = 1) and after per-label
    temperature scaling, with the temperatures and the per-label ECEs of both."""
    z, y = _label_arrays(logits, targets)
    before = label_ece(sigmoid(z), y, bins)
    after = label_ece(sigmoid(z, temperatures), y, bins)
    return {
        "temperatures": [float(t) for t in np.asarray(temperatures)],
        "nll_uncalibrated": float(label_nll(z, y).mean()),
        "nll": float(label_nll(z, y, temperatures).mean()),
        "ece_uncalibrated": before["mean"],
        "ece": after["mean"],
        "micro_ece_uncalibrated": before["micro"],
        "micro_ece": after["micro"],
        "per_label_ece_uncalibrated": before["per_label"],
        "per_label_ece": after["per_label"],
    }


def store_label_calibration(folder: Any, logits: np.ndarray, targets: np.ndarray, source: str) -> dict[str, Any]:
    """Fit per-label temperatures on held-out ``logits``/``targets`` (N, L) of a multi-label
    model, tune its decision thresholds on the calibrated probabilities (thresholds.py), and
    write both into the checkpoint ``folder``'s metadata (``temperatures``, ``thresholds``, and a
    summary under ``extra["calibration"]`` and ``extra["thresholds"]``). A temperature keeps each
    label's ranking, so thresholds tuned after calibration make the same decisions as thresholds
    tuned before it would. Returns the calibration report with the thresholds added."""
    from .metrics import precision_recall_f1
    from .thresholds import choose_thresholds

    temperatures = fit_label_temperatures(logits, targets)
    report = multilabel_calibration_report(logits, targets, temperatures)
    proba = sigmoid(logits, temperatures)
    thresholds = choose_thresholds(targets, proba)
    tuned, fixed = thresholds.apply(proba), proba >= 0.5
    summary = {
        "source": source,
        "n": int(len(targets)),
        "rule": thresholds.rule,
        "tuned_labels": int(sum(thresholds.tuned)),
        "fallback_labels": int(len(thresholds.tuned) - sum(thresholds.tuned)),
        "global_threshold": thresholds.global_threshold,
        **{f"{avg}_f1": precision_recall_f1(targets, tuned, avg)[2] for avg in ("micro", "macro")},
        **{f"{avg}_f1_at_0.5": precision_recall_f1(targets, fixed, avg)[2] for avg in ("micro", "macro")},
    }
    meta = read_meta(folder)
    meta.temperatures = [float(t) for t in temperatures]
    meta.thresholds = thresholds.to_dict()
    meta.extra["calibration"] = {
        "source": source,
        "n": int(len(targets)),
        **{k: report[k] for k in ("nll_uncalibrated", "nll", "ece_uncalibrated", "ece", "micro_ece_uncalibrated", "micro_ece")},
    }
    meta.extra["thresholds"] = summary
    write_meta(folder, meta)
    log.info(
        "per-label temperatures fitted on %s (%d examples): NLL %.4f -> %.4f, ECE (mean per label) %.4f -> %.4f, "
        "micro ECE %.4f -> %.4f; thresholds: %s; micro-F1 %.4f (0.5: %.4f), "
        "macro-F1 %.4f (0.5: %.4f)",
        source, len(targets), report["nll_uncalibrated"], report["nll"], report["ece_uncalibrated"], report["ece"],
        report["micro_ece_uncalibrated"], report["micro_ece"], thresholds.describe(), summary["micro_f1"],
        summary["micro_f1_at_0.5"], summary["macro_f1"], summary["macro_f1_at_0.5"],
    )
    return {**report, "thresholds": thresholds.to_dict(), "threshold_summary": summary}
