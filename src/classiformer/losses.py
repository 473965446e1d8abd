"""The training losses, and the weights that counter imbalanced labels.

Single-label models: cross-entropy over a softmax, optionally with a weight per class. The
``balanced`` weights are ``n_samples / (n_classes * count_c)`` (King & Zeng, 2001, "Logistic
Regression in Rare Events Data"; scikit-learn's ``compute_class_weight("balanced")``), so every
class carries the same total weight and the average weight over the training set is 1.

Multi-label models: binary cross-entropy over one sigmoid per label, optionally with a
``pos_weight`` per label that scales the loss of its positive examples. ``auto`` sets it to
negatives / positives on the training set (the value PyTorch's ``BCEWithLogitsLoss`` documentation
suggests), clipped to ``[1 / MAX_POS_WEIGHT, MAX_POS_WEIGHT]``.

Or, asked for with ``hinge_margin`` (``train.multilabel_loss = "hinge"``), the one-vs-rest hinge
loss of a linear SVM per label: ``max(0, m - s * z)`` for logit ``z`` and ``s = +1`` (label on) or
``-1`` (off), the mean over every decision (Joachims, 1998, "Text Categorization with Support
Vector Machines"; Rifkin & Klautau, 2004, "In Defense of One-Vs-All Classification"). A decision
already beyond the margin costs nothing, so the easy negatives (most of a many-label head's
decisions) stop pulling on the weights, where BCE keeps pushing every one of them further; the
head still scores with a sigmoid (calibrated per label, with thresholds tuned on validation), and
``z = 0`` (sigmoid 0.5) is where the two margins meet.

A class weight acts as a per-example weight and the loss is the mean over the batch's examples
(as Keras' ``class_weight``, or scikit-learn's ``sample_weight``), not PyTorch's
weight-normalised mean: dividing by the batch's sum of weights would undo the weighting in every
batch whose examples mostly share one class.
"""

from __future__ import annotations

import json
import logging
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

log = logging.getLogger(__name__)

# A label seen once in 10,000 training texts would get pos_weight 10,000: its few examples would
# then dominate every gradient they appear in and training turns unstable. At 100 such a label
# weighs as much as one with 1% prevalence would under auto weighting.
MAX_POS_WEIGHT = 100.0

CLASS_WEIGHT_CHOICES = ("none", "balanced")


class WeightError(ValueError):
    """A class-weight specification is malformed; the message names the file and problem."""


def class_weights(
    spec: str | Path | Mapping[str, float] | None, labels: Sequence[str],
    train_labels: Iterable[str] | Mapping[str, int],
) -> np.ndarray | None:
    """Per-class loss weights (C,) in the order of ``labels``, or ``None`` for unweighted.

    ``spec`` is ``"none"``/``None``, ``"balanced"`` (from the class counts of ``train_labels``:
    the labels, or already counted, label -> count, as a stream's first pass gives them),
    a path to a JSON object ``{label: weight}``, or such a mapping. In a file or mapping, a label
    the model does not have is an error (it is most likely a typo); a label left out weighs 1, so
    a file can up-weight only the rare classes."""
    if spec is None or (isinstance(spec, str) and spec == "none"):
        return None
    if isinstance(spec, str) and spec == "balanced":
        counts = Counter(train_labels)
        missing = [lb for lb in labels if counts[lb] == 0]
        if missing:
            raise WeightError(f"balanced class weights: no training example of class(es) {missing}")
        n = sum(counts[lb] for lb in labels)
        return np.array([n / (len(labels) * counts[lb]) for lb in labels], dtype=np.float64)
    source = "class weights"
    if isinstance(spec, Mapping):
        mapping = spec
    else:
        path = Path(spec)
        source = str(path)
        if not path.is_file():
            raise WeightError(
                f"{path}: file not found (class weights are {' or '.join(map(repr, CLASS_WEIGHT_CHOICES))}, "
                "or a JSON file {label: weight})"
            )
        try:
            mapping = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise WeightError(f"{path}:{e.lineno}: invalid JSON: {e.msg}") from None
        except UnicodeDecodeError:
            raise WeightError(f"{path}: not UTF-8 text") from None
        if not isinstance(mapping, dict):
            raise WeightError(f"{path}: expected a JSON object {{label: weight}}, got {type(mapping).__name__}")
    known = set(labels)
    unknown = sorted(str(k) for k in mapping if str(k) not in known)
    if unknown:
        raise WeightError(f"{source}: unknown label(s) {unknown}; the labels are {list(labels)}")
    weights = np.ones(len(labels), dtype=np.float64)
    given = {str(k): v for k, v in mapping.items()}
    for i, lb in enumerate(labels):
        if lb not in given:
            continue
        w = given[lb]
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w) or w <= 0:
            raise WeightError(f"{source}: weight of {lb!r} must be a positive number, got {w!r}")
        weights[i] = float(w)
    left_out = [lb for lb in labels if lb not in given]
    if left_out:
        log.info("%s: %d label(s) not listed weigh 1: %s", source, len(left_out), left_out[:10])
    return weights


def pos_weights(targets: np.ndarray, spec: str = "auto", max_weight: float = MAX_POS_WEIGHT) -> np.ndarray | None:
    """Per-label positive weights (L,) from 0/1 training ``targets`` (N, L): ``"auto"`` gives
    negatives / positives clipped to ``[1 / max_weight, max_weight]``; ``"none"`` gives ``None``."""
    if spec == "none":
        return None
    if spec != "auto":
        raise WeightError(f"pos_weight must be 'auto' or 'none', got {spec!r}")
    y = np.asarray(targets, dtype=np.float64)
    if y.ndim != 2:
        raise ValueError(f"targets must be an (examples, labels) array, got shape {y.shape}")
    pos = y.sum(0)
    neg = len(y) - pos
    ratio = np.divide(neg, pos, out=np.full_like(pos, max_weight), where=pos > 0)
    return np.clip(ratio, 1.0 / max_weight, max_weight)


def weighted_cross_entropy(
    logits: torch.Tensor, labels: torch.Tensor, weight: torch.Tensor | None = None, label_smoothing: float = 0.0
) -> torch.Tensor:
    """Mean over the batch of ``weight[y_i] * CE_i`` for logits (B, C) and class ids (B,); with
    ``weight=None`` this is plain (optionally label-smoothed) cross-entropy."""
    if weight is None:
        return F.cross_entropy(logits, labels, label_smoothing=label_smoothing)
    per_example = F.cross_entropy(logits, labels, reduction="none", label_smoothing=label_smoothing)
    return (per_example * weight[labels]).mean()


def bce_with_logits(logits: torch.Tensor, targets: torch.Tensor, pos_weight: torch.Tensor | None = None) -> torch.Tensor:
    """Mean over the B x L decisions of the binary cross-entropy of ``sigmoid(logits)`` (B, L)
    against 0/1 ``targets`` (B, L), positives scaled by ``pos_weight`` (L,)."""
    return F.binary_cross_entropy_with_logits(logits, targets.to(logits.dtype), pos_weight=pos_weight)


def prior_logits(targets: np.ndarray, pos_weight: np.ndarray | None = None) -> np.ndarray:
    """The constant logit per label (L,) that minimises the (positive-weighted) binary cross-entropy
    on 0/1 ``targets`` (N, L): ``log(w p / (1 - p))`` with ``p`` the label's frequency, smoothed by
    half an example so a label on every or no row stays finite. A multi-label head starts from these
    biases (the prior initialisation of Lin et al., 2017, "Focal Loss for Dense Object Detection",
    section 3.3): from zero, every label starts at probability 0.5, and with a fine-tuning rate
    (3e-5 to 1e-4 a step under Adam) a bias needs tens of thousands of steps to reach a rare
    label's -4 to -7, so the encoder is bent to do it instead and rare labels are never learned."""
    n = targets.shape[0]
    p = (targets.sum(0, dtype=np.float64) + 0.5) / (n + 1.0)
    odds = p / (1.0 - p)
    if pos_weight is not None:
        odds = odds * np.asarray(pos_weight, dtype=np.float64)
    return np.log(odds).astype(np.float32)


def hinge_with_logits(
    logits: torch.Tensor, targets: torch.Tensor, margin: float, pos_weight: torch.Tensor | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    """One-vs-rest hinge loss ``max(0, margin - s * z)`` of logits ``z`` (B, L) against 0/1
    ``targets`` (B, L), ``s = 2 * target - 1``; positives scaled by ``pos_weight`` (L,). The mean
    over the B x L decisions (``reduction="mean"``) or the (B, L) values (``"none"``)."""
    t = targets.to(logits.dtype)
    per = F.relu(margin - (2 * t - 1) * logits)
    if pos_weight is not None:
        per = per * (1 + (pos_weight - 1) * t)
    return per.mean() if reduction == "mean" else per


@dataclass
class Loss:
    """The loss a model trains with: softmax cross-entropy (single-label) or sigmoid BCE
    (multi-label), with its weights. ``loss(logits, labels)``; move with ``loss.to(device)``."""

    multi_label: bool = False
    class_weight: torch.Tensor | None = None  # (C,), single-label only
    pos_weight: torch.Tensor | None = None  # (L,), multi-label only
    label_smoothing: float = 0.0
    hinge_margin: float | None = None  # multi-label only: the hinge loss with this margin instead of BCE

    def __post_init__(self) -> None:
        if self.hinge_margin is not None and not self.multi_label:
            raise WeightError("the hinge loss is for multi-label models; single-label models train with cross-entropy")
        if self.hinge_margin is not None and not (self.hinge_margin > 0 and math.isfinite(self.hinge_margin)):
            raise WeightError(f"the hinge margin must be a positive number, got {self.hinge_margin}")
        if self.multi_label and self.class_weight is not None:
            raise WeightError("class weights apply to single-label models; multi-label models take pos_weight")
        if not self.multi_label and self.pos_weight is not None:
            raise WeightError("pos_weight applies to multi-label models; single-label models take class weights")
        if self.multi_label and self.label_smoothing:
            raise WeightError("label smoothing is implemented for single-label cross-entropy only")

    def to(self, device: torch.device | str) -> Loss:
        def move(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.to(device=device, dtype=torch.float32)

        # replace: the same class (a subclass keeps its own fields) with every other field as it is
        return replace(self, class_weight=move(self.class_weight), pos_weight=move(self.pos_weight))

    def __call__(self, logits: torch.Tensor, labels: torch.Tensor, index: torch.Tensor | None = None) -> torch.Tensor:
        """The mean loss of a batch; ``index`` (B,), the batch's rows in the training set, is for
        losses with per-example targets (distill.DistillLoss) and unused here."""
        if self.multi_label and self.hinge_margin is not None:
            return hinge_with_logits(logits, labels, self.hinge_margin, self.pos_weight)
        if self.multi_label:
            return bce_with_logits(logits, labels, self.pos_weight)
        return weighted_cross_entropy(logits, labels, self.class_weight, self.label_smoothing)
