"""Per-label temperature scaling of sigmoid outputs (multi-label), with ECE before and after."""

from __future__ import annotations

import numpy as np
import pytest

from classiformer.calibration import (
    binary_ece,
    fit_label_temperatures,
    label_ece,
    label_nll,
    multilabel_calibration_report,
)
from classiformer.inference import sigmoid


def overconfident(n: int = 3000, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """True logits z; labels drawn from sigmoid(z); the model reports ``scale * z`` with a
    different overconfidence per label, so each label needs its own temperature."""
    rng = np.random.default_rng(seed)
    z = rng.normal(-1.0, 1.5, (n, 3))
    y = (rng.random(z.shape) < 1 / (1 + np.exp(-z))).astype(np.int64)
    scale = np.array([4.0, 2.0, 1.0])
    return z * scale, y, scale


def test_per_label_temperature_fixes_overconfidence() -> None:
    logits, y, scale = overconfident()
    t = fit_label_temperatures(logits, y)
    np.testing.assert_allclose(t, scale, rtol=0.12)  # recovers each label's overconfidence
    assert t[0] > t[1] > 1.5 and t[2] == pytest.approx(1.0, abs=0.12)
    before, after = label_ece(sigmoid(logits), y), label_ece(sigmoid(logits, t), y)
    assert after["mean"] < 0.5 * before["mean"] and after["micro"] < 0.5 * before["micro"]
    assert after["per_label"][0] < 0.3 * before["per_label"][0]
    # Each T minimises its label's NLL: nearby temperatures do no better.
    for factor in (0.8, 1.25):
        assert (label_nll(logits, y, t * factor) > label_nll(logits, y, t)).all()
    # A temperature never changes a decision at 0.5.
    assert ((sigmoid(logits, t) >= 0.5) == (logits >= 0)).all()


def test_labels_too_rare_keep_temperature_one() -> None:
    logits, y, _ = overconfident(500)
    y[:, 1] = 0
    y[:2, 1] = 1  # two positives
    y[:, 2] = 1  # no negative
    t = fit_label_temperatures(logits, y)
    assert t[0] > 2.0 and t[1] == 1.0 and t[2] == 1.0


def test_binary_ece_by_hand() -> None:
    p = np.array([0.9, 0.9, 0.1, 0.1, 0.5])
    y = np.array([1, 0, 0, 0, 1])
    # bins: {0.9, 0.9} positives 1/2 -> |0.5 - 0.9| * 2/5; {0.1, 0.1} 0 -> 0.1 * 2/5; {0.5} 1 -> 0.5/5
    assert binary_ece(p, y) == pytest.approx(0.4 * 2 / 5 + 0.1 * 2 / 5 + 0.5 / 5)
    two = label_ece(np.stack([p, 1 - p], 1), np.stack([y, y], 1))
    assert two["per_label"][0] == pytest.approx(binary_ece(p, y))
    assert two["mean"] == pytest.approx(np.mean(two["per_label"]))
    assert two["micro"] == pytest.approx(binary_ece(np.r_[p, 1 - p], np.r_[y, y]))


def test_report_before_and_after() -> None:
    logits, y, _ = overconfident()
    t = fit_label_temperatures(logits, y)
    report = multilabel_calibration_report(logits, y, t)
    assert report["nll"] < report["nll_uncalibrated"]
    assert report["ece"] < report["ece_uncalibrated"] and report["micro_ece"] < report["micro_ece_uncalibrated"]
    assert report["temperatures"] == pytest.approx(list(t))
    same = multilabel_calibration_report(logits, y, np.ones(3))
    assert same["ece"] == pytest.approx(same["ece_uncalibrated"])
    with pytest.raises(ValueError, match="same"):
        fit_label_temperatures(logits, y[:, :2])
