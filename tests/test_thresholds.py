"""Decision thresholds tuned on validation scores: per label F1-optimal, global fallback."""

from __future__ import annotations

import numpy as np
import pytest

from classiformer.metrics import precision_recall_f1
from classiformer.thresholds import (
    MIN_CHOICE_ROWS,
    MIN_POSITIVES,
    Thresholds,
    best_f1_threshold,
    choose_thresholds,
    fixed_thresholds,
    tune_thresholds,
)


def f1_at(y: np.ndarray, s: np.ndarray, t: float) -> float:
    return float(precision_recall_f1(y[:, None], (s >= t)[:, None], "micro")[2])


def test_threshold_by_hand() -> None:
    s = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    y = np.array([1, 0, 1, 1, 0, 0])
    # Accepting the top 1..6 scores gives F1 2/4, 2/5, 4/6, 6/7, 6/8, 6/9: the best accepts down to
    # 0.6, and the threshold sits midway to the next score.
    t, f1 = best_f1_threshold(y, s)  # type: ignore[misc]
    assert t == pytest.approx(0.55) and f1 == pytest.approx(6 / 7)
    assert best_f1_threshold(np.zeros(3), np.array([0.1, 0.2, 0.3])) is None


def test_separable_scores_get_a_threshold_in_the_gap() -> None:
    rng = np.random.default_rng(0)
    y = rng.random(300) < 0.3
    s = np.where(y, rng.uniform(0.62, 1.0, 300), rng.uniform(0.0, 0.38, 300))
    t, f1 = best_f1_threshold(y, s)  # type: ignore[misc]
    assert f1 == 1.0
    assert s[~y].max() < t <= s[y].min()


@pytest.mark.parametrize("seed", range(4))
def test_the_tuned_threshold_is_the_best_of_all_cuts(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = rng.random(400) < 0.2
    s = np.round(np.clip(0.25 * y + rng.normal(0.4, 0.2, 400), 0, 1), 2)  # overlapping, with ties
    t, f1 = best_f1_threshold(y, s)  # type: ignore[misc]
    brute = max(f1_at(y, s, c) for c in np.unique(s))
    assert f1 == pytest.approx(brute) and f1_at(y, s, t) == pytest.approx(brute)


def test_rare_labels_fall_back_to_the_global_micro_f1_threshold() -> None:
    rng = np.random.default_rng(1)
    n = 500
    y = np.zeros((n, 3), dtype=int)
    y[:, 0] = rng.random(n) < 0.3
    y[:, 1] = rng.random(n) < 0.2
    y[rng.choice(n, MIN_POSITIVES - 1, replace=False), 2] = 1  # too rare to tune
    s = np.clip(0.3 * y + rng.uniform(0.0, 0.6, y.shape), 0, 1)
    th = tune_thresholds(y, s)
    assert th.tuned == [True, True, False]
    pooled, _ = best_f1_threshold(y, s)  # type: ignore[misc]
    assert th.global_threshold == pooled and th.per_label[2] == pooled
    for j in (0, 1):
        assert th.per_label[j] == best_f1_threshold(y[:, j], s[:, j])[0]  # type: ignore[index]
    # The global threshold is the micro-F1 optimum over every decision.
    best = precision_recall_f1(y, s >= pooled, "micro")[2]
    for c in np.linspace(0.05, 0.95, 91):
        assert precision_recall_f1(y, s >= c, "micro")[2] <= best + 1e-12
    # No positive anywhere: the default.
    assert tune_thresholds(np.zeros((4, 2)), np.full((4, 2), 0.3)).per_label == [0.5, 0.5]


def test_tuned_thresholds_beat_half_on_miscalibrated_scores() -> None:
    """A model whose sigmoid scores are shifted low (rare labels, as BCE training gives) predicts
    almost nothing at 0.5; thresholds tuned on a validation split fix that on a test split."""
    rng = np.random.default_rng(2)
    prevalence = np.array([0.4, 0.15, 0.05, 0.03])

    def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = (rng.random((n, 4)) < prevalence).astype(int)
        logit = 2.0 * y + rng.normal(0, 1, y.shape) - 2.5 - np.array([0.0, 0.5, 1.0, 1.5])
        return y, 1 / (1 + np.exp(-logit))

    y_val, s_val = draw(2000)
    y_test, s_test = draw(2000)
    th = tune_thresholds(y_val, s_val)
    assert all(th.tuned)
    at_half = precision_recall_f1(y_test, s_test >= 0.5, "macro")[2]
    tuned = precision_recall_f1(y_test, th.apply(s_test), "macro")[2]
    assert tuned > at_half + 0.15, (tuned, at_half)
    assert all(t < 0.5 for t in th.per_label)


def test_round_trip_and_validation() -> None:
    th = Thresholds([0.3, 0.7], [True, False], 0.7)
    assert Thresholds.from_dict(th.to_dict()) == th
    assert th.apply(np.array([[0.3, 0.69], [0.29, 0.7]])).tolist() == [[True, False], [False, True]]
    with pytest.raises(ValueError, match="unknown threshold field"):
        Thresholds.from_dict({**th.to_dict(), "typo": 1})
    with pytest.raises(ValueError, match="for 2 thresholds"):
        th.apply(np.zeros((1, 3)))
    assert fixed_thresholds(0.4, 3).per_label == [0.4, 0.4, 0.4]


def shared_scale(n: int, labels: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels whose scores all follow one curve (a model calibrated alike for every label), each
    with few positives: one cut fits them all, and per-label cuts only fit their few positives."""
    rng = np.random.default_rng(seed)
    y = (rng.random((n, labels)) < 0.03).astype(int)
    logit = 2.5 * y + rng.normal(0, 1, y.shape) - 1.5
    return y, 1 / (1 + np.exp(-logit))


def test_the_global_rule_replaces_per_label_cuts_only_when_better_out_of_fold() -> None:
    y_val, s_val = shared_scale(400, 30, seed=0)
    chosen = choose_thresholds(y_val, s_val)
    per_label = tune_thresholds(y_val, s_val)
    assert chosen.rule == "global" and not any(chosen.tuned)
    assert chosen.per_label == [per_label.global_threshold] * 30 == [chosen.global_threshold] * 30
    assert "one global threshold" in chosen.describe()
    # ... and it is the better rule on new data from the same model, on both measures
    y_test, s_test = shared_scale(4000, 30, seed=1)
    for avg in ("micro", "macro"):
        assert (precision_recall_f1(y_test, chosen.apply(s_test), avg)[2]
                > precision_recall_f1(y_test, per_label.apply(s_test), avg)[2])
    assert choose_thresholds(y_val, s_val) == chosen  # seeded: the same choice every time
    # Where labels need cuts of their own (scores shifted differently per label), they keep them.
    rng = np.random.default_rng(2)
    y = (rng.random((2000, 4)) < np.array([0.4, 0.15, 0.05, 0.03])).astype(int)
    logit = 2.0 * y + rng.normal(0, 1, y.shape) - 2.5 - np.array([0.0, 0.5, 1.0, 1.5])
    kept = choose_thresholds(y, 1 / (1 + np.exp(-logit)))
    assert kept.rule == "per_label" and kept == tune_thresholds(y, 1 / (1 + np.exp(-logit)))
    # Too few rows to compare the rules: per label.
    assert choose_thresholds(y_val[: MIN_CHOICE_ROWS - 1], s_val[: MIN_CHOICE_ROWS - 1]).rule == "per_label"
    assert Thresholds.from_dict(chosen.to_dict()) == chosen
    with pytest.raises(ValueError, match="rule"):
        Thresholds([0.5], [False], 0.5, rule="median")


def symmetric(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A model whose best cut is 0.5 by construction: each label positive half the time, logits
    ±3 with the same spread, so the posterior is 0.5 exactly at logit 0. Tuned cuts can only fit
    the noise of the rows they are tuned on."""
    rng = np.random.default_rng(seed)
    y = (rng.random((n, 3)) < 0.5).astype(int)
    logit = np.where(y == 1, 3.0, -3.0) + rng.normal(0, 1.0, y.shape)
    return y, 1 / (1 + np.exp(-logit))


def test_the_untuned_cut_replaces_tuned_ones_only_when_better_out_of_fold() -> None:
    for seed in range(5):
        y_val, s_val = symmetric(200, seed)
        chosen = choose_thresholds(y_val, s_val)
        assert chosen.rule == "fixed" and chosen.per_label == [0.5] * 3 and not any(chosen.tuned), seed
    assert "0.5 for every label, untuned" in chosen.describe()
    assert Thresholds.from_dict(chosen.to_dict()) == chosen
    # ... and on new data from the same model it is as good as either tuned rule or better.
    tuned = tune_thresholds(y_val, s_val)
    y_test, s_test = symmetric(20_000, seed=99)
    for avg in ("micro", "macro"):
        f1 = precision_recall_f1(y_test, chosen.apply(s_test), avg)[2]
        assert f1 >= precision_recall_f1(y_test, tuned.apply(s_test), avg)[2]
        assert f1 >= precision_recall_f1(y_test, s_test >= tuned.global_threshold, avg)[2]
    # Where the tuned global cut is better (the shared-scale model above: rare labels), it stays.
    assert choose_thresholds(*shared_scale(400, 30, seed=0)).rule == "global"
    assert "0.5 for every label" in format_multilabel_report_line("fixed")


def format_multilabel_report_line(rule: str) -> str:
    from classiformer.metrics import format_multilabel_report, multilabel_report

    rng = np.random.default_rng(0)
    y = (rng.random((50, 3)) < 0.3).astype(int)
    report = multilabel_report(y, rng.random((50, 3)), ["a", "b", "c"])
    return format_multilabel_report({**report, "threshold_rule": rule}, top=3)
