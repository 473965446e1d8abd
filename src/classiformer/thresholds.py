"""Decision thresholds of a multi-label model, tuned on held-out scores.

A sigmoid head trained with binary cross-entropy scores rare labels low: 0.5 is rarely the
threshold that maximises their F1. Each label gets the threshold that maximises its own F1 on the
validation split (the "SCut" strategy, Yang, 2001, "A Study of Thresholding Strategies for Text
Categorization"; with F1 as the target, Lipton, Elkan et al., 2014, "Optimal Thresholding of
Classifiers to Maximize F1 Measure"). A threshold tuned on one or two positives fits those
examples rather than the label (Yang's SCut overfits exactly there, hence her SCutFBR fallback),
so a label with fewer than
``MIN_POSITIVES`` validation positives takes the global threshold instead: the one value that
maximises micro-F1 over all label decisions of the validation split. So does a label whose best
validation F1 stays below ``MIN_F1``: a label the model has not learned has a flat precision-recall
curve at its base rate, and its F1-optimal cut there is "predict it nearly everywhere", which floods
new data with false positives (on Reuters, docs/benchmarks.md "Multi-label and imbalanced classes").

Which rule a model keeps is decided on the validation split too, out of fold
(:func:`choose_thresholds`): each rule is tuned on one half of it and scored on the other, over
seeded repeats; the single global threshold replaces the per-label ones when it does better on
both micro- and macro-F1 there. Per-label cuts fitted to a handful of positives each can lose to
one cut on both measures (Reuters-21578 with the hinge-trained ``base``: out of fold 88.3 / 41.2%
global against 87.1 / 41.0% per label; on the test set 85.1 / 43.3% against 84.7 / 44.2%, and
86.1 / 44.1% against 82.7 / 41.9% with another seed); on data where per-label cuts pay off they stay.
Last, the untuned cut at 0.5 replaces the tuned rule when it in turn does better on both measures
out of fold: a model whose calibrated probabilities already put the cut in the right place loses
by tuning it on a few hundred examples (Reuters, ``base``, seed 42: out of fold 88.3 / 41.6% at 0.5
against 87.9 / 41.4% global; test 85.9 / 45.2% against 85.5 / 43.7%).

A label is predicted when ``score >= threshold``. A tuned threshold sits midway between the lowest
score it accepts and the next lower score, so scores that move a little on new data do not flip.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from .metrics import cut_counts, precision_recall_f1

# Fewer validation positives than this and a label's own F1-optimal threshold is mostly noise.
MIN_POSITIVES = 3
# A label whose own best validation F1 is below this is treated as not learned (see the docstring).
MIN_F1 = 0.0
# choose_thresholds: the out-of-fold comparison of the two rules (halves of the validation split,
# this many seeded repeats), made only on at least MIN_CHOICE_ROWS validation rows.
CHOICE_REPEATS = 5
MIN_CHOICE_ROWS = 100
RULES = ("per_label", "global", "fixed")


@dataclass
class Thresholds:
    """One decision threshold per label (in the model's label order), and how each was chosen."""

    per_label: list[float]
    tuned: list[bool]  # False: the label had too few positives and uses ``global_threshold``
    global_threshold: float
    min_positives: int = MIN_POSITIVES
    min_f1: float = 0.0  # 0.0 for checkpoints made before the rule
    # or "global": every label at global_threshold, chosen out of fold; "fixed": every label at
    # global_threshold, an untuned cut (0.5 from choose_thresholds), chosen out of fold
    rule: str = "per_label"

    def __post_init__(self) -> None:
        if len(self.per_label) != len(self.tuned):
            raise ValueError(f"{len(self.per_label)} thresholds but {len(self.tuned)} tuned flags")
        if self.rule not in RULES:
            raise ValueError(f"threshold rule {self.rule!r}: expected one of {list(RULES)}")

    def apply(self, scores: np.ndarray) -> np.ndarray:
        """Boolean decisions (N, L) for scores (N, L)."""
        s = np.asarray(scores)
        if s.ndim != 2 or s.shape[1] != len(self.per_label):
            raise ValueError(f"scores of shape {s.shape} for {len(self.per_label)} thresholds")
        return s >= np.asarray(self.per_label)

    def describe(self) -> str:
        """A line for logs and summaries: how the thresholds were chosen."""
        if self.rule == "global":
            return f"one global threshold {self.global_threshold:.3f} for every label (better out of fold than per-label)"
        if self.rule == "fixed":
            return f"{self.global_threshold:g} for every label, untuned (better out of fold than tuned thresholds)"
        n = int(sum(self.tuned))
        return f"{n} tuned per label, {len(self.tuned) - n} at the global {self.global_threshold:.3f}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Thresholds:
        unknown = set(data) - {"per_label", "tuned", "global_threshold", "min_positives", "min_f1", "rule"}
        if unknown:
            raise ValueError(f"unknown threshold field(s) {sorted(unknown)}")
        return cls(
            per_label=[float(t) for t in data["per_label"]],
            tuned=[bool(t) for t in data["tuned"]],
            global_threshold=float(data["global_threshold"]),
            min_positives=int(data.get("min_positives", MIN_POSITIVES)),
            min_f1=float(data.get("min_f1", 0.0)),
            rule=str(data.get("rule", "per_label")),
        )


def best_f1_threshold(y_true: np.ndarray, scores: np.ndarray) -> tuple[float, float] | None:
    """``(threshold, F1)`` of the F1-optimal rule ``score >= threshold`` for binary ``y_true``
    (N,) and ``scores`` (N,), or ``None`` when there is no positive to find. Of several equally
    good cuts the highest threshold wins (fewest positive predictions)."""
    s, cut, tp, fp, positives = cut_counts(y_true, scores)
    if positives == 0:
        return None
    # Cutting below position k accepts the k + 1 highest scores. F1 = 2TP / (2TP + FP + FN), with
    # FN = positives - TP.
    f1 = 2 * tp / (tp + fp + positives)
    k = int(cut[int(np.argmax(f1))])
    threshold = float(s[k])
    if k + 1 < len(s):
        mid = (s[k] + s[k + 1]) / 2
        if s[k + 1] < mid <= s[k]:  # adjacent floats can round the midpoint onto the lower score
            threshold = float(mid)
    return threshold, float(f1.max())


def tune_thresholds(
    y_true: np.ndarray, scores: np.ndarray, min_positives: int = MIN_POSITIVES, default: float = 0.5,
    min_f1: float = MIN_F1,
) -> Thresholds:
    """Per-label F1-optimal thresholds on held-out ``scores`` (N, L) with 0/1 ``y_true`` (N, L);
    labels with fewer than ``min_positives`` positives, or whose best F1 is below ``min_f1``, take
    the micro-F1-optimal global threshold (``default`` when the held-out data has no positive at all)."""
    y = np.asarray(y_true).astype(bool)
    s = np.asarray(scores, dtype=np.float64)
    if y.ndim != 2 or y.shape != s.shape:
        raise ValueError(f"y_true {y.shape} and scores {s.shape} must be the same (examples, labels) shape")
    pooled = best_f1_threshold(y, s)
    global_threshold = default if pooled is None else pooled[0]
    per_label: list[float] = []
    tuned: list[bool] = []
    for j in range(y.shape[1]):
        best = best_f1_threshold(y[:, j], s[:, j]) if y[:, j].sum() >= min_positives else None
        if best is not None and best[1] < min_f1:
            best = None
        per_label.append(global_threshold if best is None else best[0])
        tuned.append(best is not None)
    return Thresholds(per_label, tuned, global_threshold, min_positives, min_f1)


def choose_thresholds(
    y_true: np.ndarray, scores: np.ndarray, repeats: int = CHOICE_REPEATS, seed: int = 0, untuned: float = 0.5,
) -> Thresholds:
    """The thresholds a model keeps (module docstring): :func:`tune_thresholds`' per-label ones;
    or, when it does better out of fold on both micro- and macro-F1, the global threshold for every
    label; or, when it does better than that choice on both, ``untuned`` for every label. Out of
    fold: the validation rows split into random halves (``repeats`` times, seeded), the rules tuned
    on one half and scored on the other, and the other way round; the F1s are averaged. Fewer than
    ``MIN_CHOICE_ROWS`` rows keep the per-label rule."""
    y = np.asarray(y_true).astype(bool)
    s = np.asarray(scores, dtype=np.float64)
    per_label = tune_thresholds(y, s)
    if len(y) < MIN_CHOICE_ROWS:
        return per_label
    rng = np.random.default_rng(seed)
    totals = np.zeros((3, 2))  # rule (per label, global, untuned) x (micro, macro)
    for _ in range(repeats):
        order = rng.permutation(len(y))
        halves = order[: len(y) // 2], order[len(y) // 2:]
        for fit_rows, eval_rows in (halves, halves[::-1]):
            t = tune_thresholds(y[fit_rows], s[fit_rows])
            ys, ss = y[eval_rows], s[eval_rows]
            for r, decided in enumerate((t.apply(ss), ss >= t.global_threshold, ss >= untuned)):
                totals[r] += [precision_recall_f1(ys, decided, avg)[2] for avg in ("micro", "macro")]
    chosen = 1 if (totals[1] > totals[0]).all() else 0
    if (totals[2] > totals[chosen]).all():
        chosen = 2
    if chosen == 0:
        return per_label
    cut, rule = (per_label.global_threshold, "global") if chosen == 1 else (float(untuned), "fixed")
    n = len(per_label.per_label)
    return Thresholds([cut] * n, [False] * n, cut, per_label.min_positives, per_label.min_f1, rule=rule)


def fixed_thresholds(value: float, n_labels: int) -> Thresholds:
    """One threshold for every label, not tuned on data (what ``--threshold`` asks for)."""
    return Thresholds([float(value)] * n_labels, [False] * n_labels, float(value), 0)
