"""Class weights, pos_weight and the weighted losses, checked against hand computations."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.utils.class_weight import compute_class_weight

from classiformer.losses import (
    MAX_POS_WEIGHT,
    Loss,
    WeightError,
    bce_with_logits,
    class_weights,
    hinge_with_logits,
    pos_weights,
    weighted_cross_entropy,
)

LABELS = ["a", "b", "c"]
TRAIN = ["a"] * 6 + ["b"] * 3 + ["c"]


def test_balanced_weights_by_hand_and_as_sklearn() -> None:
    w = class_weights("balanced", LABELS, TRAIN)
    assert w is not None
    np.testing.assert_allclose(w, [10 / (3 * 6), 10 / (3 * 3), 10 / (3 * 1)])
    np.testing.assert_allclose(w, compute_class_weight("balanced", classes=np.array(LABELS), y=np.array(TRAIN)))
    # Every class carries the same total weight; the mean weight over the training set is 1.
    assert np.mean([w[LABELS.index(y)] for y in TRAIN]) == pytest.approx(1.0)
    assert class_weights("none", LABELS, TRAIN) is None and class_weights(None, LABELS, TRAIN) is None
    with pytest.raises(WeightError, match=r"no training example of class\(es\) \['c'\]"):
        class_weights("balanced", LABELS, ["a", "b"])


def test_weights_from_a_json_file(tmp_path: Path) -> None:
    f = tmp_path / "w.json"
    f.write_text(json.dumps({"c": 5, "a": 0.5}))
    w = class_weights(f, LABELS, TRAIN)
    assert w is not None and w.tolist() == [0.5, 1.0, 5.0]  # "b" left out: weight 1
    f.write_text(json.dumps({"c": 5, "d": 2}))
    with pytest.raises(WeightError, match=r"w.json: unknown label\(s\) \['d'\]"):
        class_weights(str(f), LABELS, TRAIN)
    for bad in (0, -1, "2", True, None):
        f.write_text(json.dumps({"c": bad}))
        with pytest.raises(WeightError, match="weight of 'c' must be a positive number"):
            class_weights(f, LABELS, TRAIN)
    f.write_text('{\n"c": 2,\n}')
    with pytest.raises(WeightError, match=r"w.json:3: invalid JSON"):
        class_weights(f, LABELS, TRAIN)
    f.write_text("[1, 2]")
    with pytest.raises(WeightError, match="expected a JSON object"):
        class_weights(f, LABELS, TRAIN)
    with pytest.raises(WeightError, match="missing.json: file not found .*'balanced'"):
        class_weights(tmp_path / "missing.json", LABELS, TRAIN)
    assert class_weights({"b": 2.0}, LABELS, TRAIN).tolist() == [1.0, 2.0, 1.0]  # type: ignore[union-attr]


def test_pos_weight_auto_by_hand() -> None:
    y = np.zeros((1000, 4))
    y[:500, 0] = 1  # 500 / 500 -> 1
    y[:100, 1] = 1  # 900 / 100 -> 9
    y[:2, 2] = 1  # 998 / 2 -> clipped
    y[:, 3] = 1  # no negatives -> clipped from below
    pw = pos_weights(y)
    assert pw is not None
    np.testing.assert_allclose(pw, [1.0, 9.0, MAX_POS_WEIGHT, 1 / MAX_POS_WEIGHT])
    assert pos_weights(np.zeros((3, 1)))[0] == MAX_POS_WEIGHT  # type: ignore[index]
    assert pos_weights(y, "none") is None
    with pytest.raises(WeightError, match="'auto' or 'none'"):
        pos_weights(y, "balanced")


def test_weighted_cross_entropy_by_hand() -> None:
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 1.5, 0.0], [0.0, 0.0, 3.0], [1.0, 1.0, 1.0]])
    labels = torch.tensor([0, 2, 2, 1])
    w = torch.tensor([0.5, 2.0, 4.0])
    log_p = [[v - math.log(sum(math.exp(x) for x in row)) for v in row] for row in logits.tolist()]
    nll = [-log_p[i][y] for i, y in enumerate(labels.tolist())]
    weights = [0.5, 4.0, 4.0, 2.0]
    expected = sum(wi * li for wi, li in zip(weights, nll)) / 4  # mean over examples, not over weights
    assert float(weighted_cross_entropy(logits, labels, w)) == pytest.approx(expected, rel=1e-6)
    assert float(weighted_cross_entropy(logits, labels)) == pytest.approx(sum(nll) / 4, rel=1e-6)
    # Label smoothing: (1 - e) * NLL + e * mean over classes of -log p, then weighted.
    e = 0.1
    smooth = [(1 - e) * nll[i] - e * sum(log_p[i]) / 3 for i in range(4)]
    expected = sum(wi * li for wi, li in zip(weights, smooth)) / 4
    assert float(weighted_cross_entropy(logits, labels, w, e)) == pytest.approx(expected, rel=1e-6)
    # Uniform weights leave the loss unchanged.
    assert float(weighted_cross_entropy(logits, labels, torch.ones(3))) == pytest.approx(sum(nll) / 4, rel=1e-6)


def test_bce_with_pos_weight_by_hand() -> None:
    logits = torch.tensor([[2.0, -1.0], [-0.5, 0.3], [0.0, 4.0]])
    targets = torch.tensor([[1, 0], [1, 1], [0, 0]])
    pw = torch.tensor([3.0, 0.5])

    def sig(x: float) -> float:
        return 1 / (1 + math.exp(-x))

    total = 0.0
    for i in range(3):
        for j in range(2):
            z, y = float(logits[i, j]), int(targets[i, j])
            total += -(float(pw[j]) * y * math.log(sig(z)) + (1 - y) * math.log(1 - sig(z)))
    assert float(bce_with_logits(logits, targets, pw)) == pytest.approx(total / 6, rel=1e-6)
    unweighted = float(bce_with_logits(logits, targets))
    assert unweighted < float(bce_with_logits(logits, targets, torch.tensor([3.0, 3.0])))


def test_loss_object_chooses_the_loss() -> None:
    logits = torch.randn(5, 3)
    labels = torch.tensor([0, 1, 2, 2, 1])
    cw = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    single = Loss(class_weight=cw).to("cpu")
    assert single.class_weight is not None and single.class_weight.dtype == torch.float32
    assert float(single(logits, labels)) == pytest.approx(float(weighted_cross_entropy(logits, labels, cw.float())))
    targets = torch.tensor([[1, 0, 1], [0, 0, 0], [1, 1, 0], [0, 1, 1], [0, 0, 1]])
    multi = Loss(multi_label=True, pos_weight=torch.tensor([2.0, 1.0, 1.0]))
    assert float(multi(logits, targets)) == pytest.approx(float(bce_with_logits(logits, targets, multi.pos_weight)))
    with pytest.raises(WeightError, match="pos_weight"):
        Loss(multi_label=True, class_weight=cw)
    with pytest.raises(WeightError, match="class weights"):
        Loss(pos_weight=cw)


def test_hinge_with_pos_weight_by_hand() -> None:
    logits = torch.tensor([[2.0, -1.0], [-0.5, 0.3], [0.0, 7.0]])
    targets = torch.tensor([[1, 0], [1, 1], [0, 0]])
    pw = torch.tensor([3.0, 0.5])
    margin = 1.5
    total = 0.0
    for i in range(3):
        for j in range(2):
            z, y = float(logits[i, j]), int(targets[i, j])
            s = 1.0 if y else -1.0
            total += (float(pw[j]) if y else 1.0) * max(0.0, margin - s * z)
    assert float(hinge_with_logits(logits, targets, margin, pw)) == pytest.approx(total / 6, rel=1e-6)
    # Past the margin a decision costs nothing: 2.0 for a positive and -1.0 for a negative at margin 1.
    per = hinge_with_logits(logits, targets, 1.0, reduction="none")
    assert per[0].tolist() == [0.0, 0.0] and per[2, 0] == 1.0 and per[2, 1] == 8.0
    loss = Loss(multi_label=True, pos_weight=pw, hinge_margin=margin).to("cpu")
    assert loss.hinge_margin == margin  # kept by .to()
    assert float(loss(logits, targets)) == pytest.approx(total / 6, rel=1e-6)
    # Its gradient pushes only the decisions inside the margin.
    z = logits.clone().requires_grad_(True)
    Loss(multi_label=True, hinge_margin=1.0)(z, targets).backward()
    assert z.grad is not None and (z.grad[0] == 0).all() and z.grad[2, 1] > 0 > z.grad[1, 0]
    with pytest.raises(WeightError, match="multi-label"):
        Loss(hinge_margin=1.0)
    with pytest.raises(WeightError, match="positive"):
        Loss(multi_label=True, hinge_margin=0.0)
