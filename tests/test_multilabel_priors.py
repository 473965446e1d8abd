"""A fresh multi-label head starts from the labels' prior logits (losses.prior_logits): the constant
that minimises the weighted binary cross-entropy, set by fit for every family trained with BCE, left
alone for the hinge loss and for a head that was loaded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from classiformer import fit, resolve_config
from classiformer.checkpoint import load_checkpoint
from classiformer.data import TextDataset
from classiformer.losses import pos_weights, prior_logits

from .test_multilabel_training import NAMES, indicator, multilabel_texts
from .test_pretrained import config_for, tiny_bert  # noqa: F401  (the session fixture)


def test_prior_logits_minimise_the_weighted_bce() -> None:
    rng = np.random.default_rng(0)
    y = (rng.random((20_000, 4)) < [0.5, 0.1, 0.01, 0.002]).astype(np.int64)
    pw = np.array([1.0, 3.0, 0.5, 10.0])
    b = prior_logits(y, pw)
    assert np.isfinite(b).all() and b.dtype == np.float32
    # The closed form: sigmoid(b) / (1 - sigmoid(b)) = w p / (1 - p), p smoothed by half an example.
    p = (y.sum(0) + 0.5) / (len(y) + 1)
    np.testing.assert_allclose(np.exp(b), pw * p / (1 - p), rtol=1e-5)
    # And it is the minimum (up to the smoothing): each label's weighted BCE rises both ways.
    def label_losses(logits: np.ndarray) -> np.ndarray:
        z = torch.from_numpy(np.broadcast_to(logits, y.shape).astype(np.float32))
        per = torch.nn.functional.binary_cross_entropy_with_logits(
            z, torch.from_numpy(y).float(), pos_weight=torch.from_numpy(pw).float(), reduction="none")
        return per.mean(0).numpy()

    at = label_losses(b)
    assert (at < label_losses(b + 0.05)).all() and (at < label_losses(b - 0.05)).all()
    # A label on no row still gets a finite, very negative start.
    assert prior_logits(np.zeros((100, 1)))[0] == pytest.approx(np.log(0.5 / 100.5))


def output_bias(run: Path) -> np.ndarray:
    model, _, _ = load_checkpoint(run)
    hf = getattr(model, "hf", None)
    layer = hf.classifier if hf is not None and getattr(model.config, "mode", "") != "frozen" else model.head
    return layer.bias.detach().numpy()


def toy(n: int, seed: int) -> TextDataset:
    """The overlapping-topics toy with its last label made rare (kept on every fifth text that has
    it), so its prior logit is far from 0."""
    texts, sets = multilabel_texts(n, seed)
    rare = NAMES[-1]
    sets = [s if rare not in s or i % 5 == 0 else [lb for lb in s if lb != rare] for i, s in enumerate(sets)]
    return TextDataset(texts, None, label_sets=sets)


SCRATCH_MODEL = {"tiny": {"embed_dim": 18, "num_heads": 3, "ff_dim": 23, "hidden_dim": 11, "dropout": 0.0},
                 "rnn-attention": {"embed_dim": 16, "hidden_dim": 12, "attention_dim": 10, "dropout": 0.0}}


def scratch(preset: str, loss: str):
    # lr 1e-9: the head stays where fit put it, so the checkpoint shows the starting bias.
    return resolve_config(preset, model=SCRATCH_MODEL[preset], tokenizer={"vocab_size": 60, "max_length": 12},
                          train={"epochs": 1, "batch_size": 16, "lr": 1e-9, "patience": 0, "multilabel_loss": loss,
                                 "recipe": "fixed"})


@pytest.mark.parametrize("case", ["tiny", "rnn-attention", "finetune", "frozen", "tiny-pos-weight"])
def test_a_fresh_multi_label_head_starts_at_the_labels_priors(case: str, tiny_bert: Path, tmp_path: Path) -> None:  # noqa: F811
    train, val = toy(160, seed=0), toy(40, seed=1)  # a validation set of its own: every train row trains
    if case in ("finetune", "frozen"):
        config = config_for(tiny_bert, case, lr=1e-9, epochs=1, recipe="fixed")  # no rule 10 head rate
    else:
        config = scratch(case.removesuffix("-pos-weight"), "bce")
    if case == "tiny-pos-weight":
        config.train.pos_weight = "auto"
    result = fit(config, train, tmp_path / "run", validation=val, progress=False)
    y = indicator(train.label_sets or [])
    assert y.shape[1] == len(NAMES)
    pw = None
    if case == "tiny-pos-weight":
        pw = pos_weights(y, "auto")
    np.testing.assert_allclose(output_bias(result.best_dir), prior_logits(y, pw), atol=1e-4)
    assert (prior_logits(y) < -1.0).any()  # the toy's priors are far from 0: the check can fail


def test_the_hinge_loss_keeps_the_drawn_start(tmp_path: Path) -> None:
    # Its logits are margins, not log-odds: a prior would be a wrong start.
    train = toy(160, seed=0)
    result = fit(scratch("tiny", "hinge"), train, tmp_path / "run", validation=toy(40, seed=1), progress=False)
    priors = prior_logits(indicator(train.label_sets or []))
    assert np.abs(output_bias(result.best_dir) - priors).max() > 0.5


def test_fit_trains_a_fine_tuned_multi_label_head_at_rule_10s_rate(tiny_bert: Path, tmp_path: Path) -> None:  # noqa: F811
    import json

    from classiformer.recipe import MULTI_LABEL_HEAD_LR

    config = config_for(tiny_bert, "finetune", lr=1e-4, epochs=1)
    result = fit(config, toy(160, seed=0), tmp_path / "run", validation=toy(40, seed=1), progress=False)
    stored = json.loads((tmp_path / "run" / "config.json").read_text(encoding="utf-8"))
    assert stored["recipe"]["choices"]["train.head_lr"]["value"] == MULTI_LABEL_HEAD_LR
    assert stored["train"]["head_lr"] == MULTI_LABEL_HEAD_LR and stored["train"]["lr"] == 1e-4
    # The rate reached the head: it moved further from its prior start than the body's rate allows.
    y = indicator(toy(160, seed=0).label_sets or [])
    assert np.abs(output_bias(result.best_dir) - prior_logits(y)).max() > 20 * 1e-4
