"""Multi-label training: sigmoid + BCE in the shared loop, on a 3-label toy task with overlapping labels."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from classiformer import Classifier
from classiformer.checkpoint import MULTI_LABEL, CheckpointError, CheckpointMeta, load_checkpoint, read_meta
from classiformer.config import ConfigError, resolve_config
from classiformer.data.batching import EncodedDataset
from classiformer.inference import logits_for
from classiformer.losses import Loss
from classiformer.models import build_model
from classiformer.thresholds import Thresholds
from classiformer.tokenizers import train_tokenizer
from classiformer.training import Trainer, TrainResult, calibrate_best, multilabel_validation

from .conftest import FILLER, TOPICS

NAMES = sorted(TOPICS)  # money, sports, tech
# Texts shaped like the training texts (topic words among 2-6 filler words): money + sports, none,
# tech, all three. Without filler they are outside what the toy model saw, and what it says about
# them varies with the CPU's rounding (on an AVX-512 Xeon "goal team stock market" scored sports 0.02).
PROBES = ["goal the team a stock of market", "the a of today", "chip the robot a code", "match the oil a bank of software"]


def multilabel_texts(n: int, seed: int) -> tuple[list[str], list[list[str]]]:
    """Texts about zero, one, two or three topics; a text's labels are the topics it mentions."""
    rng = random.Random(seed)
    texts, label_sets = [], []
    for _ in range(n):
        k = rng.choices([0, 1, 2, 3], weights=[1, 4, 3, 1])[0]
        topics = sorted(rng.sample(NAMES, k))
        words = [w for t in topics for w in rng.choices(TOPICS[t], k=rng.randint(1, 2))]
        words += rng.choices(FILLER, k=rng.randint(2, 6))
        rng.shuffle(words)
        texts.append(" ".join(words))
        label_sets.append(topics)
    return texts, label_sets


def indicator(label_sets: list[list[str]]) -> np.ndarray:
    return np.array([[lb in s for lb in NAMES] for s in label_sets], dtype=np.int64)


def tiny(epochs: int = 15):
    return resolve_config(
        "tiny",
        model={"embed_dim": 18, "num_heads": 3, "ff_dim": 23, "hidden_dim": 11, "dropout": 0.0},
        tokenizer={"vocab_size": 60, "max_length": 12},
        train={"epochs": epochs, "batch_size": 16, "lr": 3e-2, "patience": 0},
    )


def trainer_for(tmp_path: Path, texts: list[str], loss: Loss | None = None, multi: bool = True) -> Trainer:
    cfg = tiny()
    tok = train_tokenizer(cfg.tokenizer, texts)
    cfg.model.num_labels, cfg.model.vocab_size = 3, tok.vocab_size
    cfg.model.max_length, cfg.model.pad_id = tok.max_length, tok.pad_id
    torch.manual_seed(0)
    model = build_model(cfg.family, cfg.model)
    meta = CheckpointMeta(family=cfg.family, model=cfg.to_dict()["model"], labels=NAMES,
                          problem_type=MULTI_LABEL if multi else "single_label_classification")
    return Trainer(model, tok, meta, cfg.train, tmp_path, torch.device("cpu"), progress=False, loss=loss)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[TrainResult, EncodedDataset]:
    texts, sets = multilabel_texts(300, seed=0)
    val_texts, val_sets = multilabel_texts(100, seed=1)
    assert any(not s for s in sets) and any(len(s) >= 2 for s in sets)
    trainer = trainer_for(tmp_path_factory.mktemp("multi"), texts)
    tok = trainer.tokenizer
    train = EncodedDataset(tok.encode(texts), indicator(sets))
    val = EncodedDataset(tok.encode(val_texts), indicator(val_sets))
    return trainer.train(train, val), val


def test_sigmoid_bce_learns_overlapping_labels(trained: tuple[TrainResult, EncodedDataset]) -> None:
    result, _ = trained
    last = result.history[-1]
    assert last["val_micro_f1"] > 0.9 and last["val_macro_f1"] > 0.9 and last["val_subset_accuracy"] > 0.7
    assert result.best_val_accuracy == max(h["val_micro_f1"] for h in result.history)  # best epoch by micro-F1
    # Scores are independent sigmoids: a text about two topics scores high on both.
    model, tok, meta = load_checkpoint(result.best_dir)
    assert meta.problem_type == MULTI_LABEL and read_meta(result.best_dir).multi_label
    z = logits_for(model, EncodedDataset(tok.encode(PROBES[:2])), tok.pad_id)
    p = 1 / (1 + np.exp(-z))
    assert p[0, NAMES.index("sports")] > 0.5 and p[0, NAMES.index("money")] > 0.5 and p[0, NAMES.index("tech")] < 0.5
    assert (p[1] < 0.5).all()  # no topic word: no label


def test_thresholds_and_temperatures_stored_and_used(trained: tuple[TrainResult, EncodedDataset], tmp_path: Path) -> None:
    result, val = trained
    best = tmp_path / "best"
    shutil.copytree(result.best_dir, best)
    assert calibrate_best(best, val, 64, torch.device("cpu")) == 1.0
    meta = read_meta(best)
    assert meta.thresholds is not None and meta.temperatures is not None and len(meta.temperatures) == 3
    th = Thresholds.from_dict(meta.thresholds)
    assert all(0.0 < t < 1.0 for t in th.per_label)
    # Per-label cuts, or the global one or 0.5 where it did better out of fold (thresholds.choose_thresholds):
    # which one wins depends on the trained model (a CPU's rounding moves it), what each stores does not.
    if th.rule == "per_label":
        assert all(th.tuned)
    else:
        assert th.rule in ("global", "fixed") and not any(th.tuned) and th.per_label == [th.global_threshold] * 3
        assert th.rule == "global" or th.global_threshold == 0.5
    summary = meta.extra["thresholds"]
    assert summary["tuned_labels"] == sum(th.tuned) and summary["micro_f1"] >= summary["micro_f1_at_0.5"] - 1e-9
    cal = meta.extra["calibration"]
    assert cal["n"] == len(val) and cal["nll"] <= cal["nll_uncalibrated"] + 1e-9

    clf = Classifier.load(best)
    assert clf.multi_label and clf.describe()["problem_type"] == MULTI_LABEL
    texts = PROBES
    proba = clf.predict_proba(texts)
    z = clf.logits(texts)
    np.testing.assert_allclose(proba, 1 / (1 + np.exp(-z / np.array(meta.temperatures))), rtol=1e-5, atol=1e-7)
    assert proba[0].sum() > 1.2  # independent sigmoids, not a distribution over labels
    assert clf.predict(texts) == [["money", "sports"], [], ["tech"], ["money", "sports", "tech"]]
    assert clf.predict_label_sets(texts) == clf.predict(texts)
    chosen = proba >= np.array(th.per_label)
    assert clf.predict(texts) == [[NAMES[j] for j in np.flatnonzero(r)] for r in chosen]
    # One threshold for all labels overrides the tuned ones.
    assert Classifier.load(best, threshold=0.0).predict(texts[:1]) == [NAMES]
    top, second = np.sort(proba[2])[[-1, -2]]
    cut = float(top + second) / 2  # only the tech text's most likely label reaches it
    assert Classifier.load(best, threshold=cut).predict(texts[2:3]) == [[NAMES[int(proba[2].argmax())]]]
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        clf.set_threshold(1.5)
    assert clf.predict([]) == []


def test_pos_weight_changes_the_training_loss(tmp_path: Path) -> None:
    texts, sets = multilabel_texts(64, seed=2)
    runs = []
    for k, pw in enumerate((None, torch.tensor([5.0, 5.0, 5.0]))):
        trainer = trainer_for(tmp_path / str(k), texts, Loss(multi_label=True, pos_weight=pw))
        data = EncodedDataset(trainer.tokenizer.encode(texts), indicator(sets))
        trainer.cfg.epochs = 1
        runs.append(trainer.train(data, data).history[0]["train_loss"])
    assert runs[1] > runs[0] * 1.5  # positives weigh 5x in the first epoch's loss


def test_validation_metrics_by_hand() -> None:
    y = np.array([[1, 0, 0], [0, 1, 0], [1, 1, 0], [0, 0, 0]])
    logits = np.array([[3.0, -2.0, -1.0], [-1.0, 0.5, -3.0], [1.0, -0.5, -2.0], [-2.0, -2.0, -2.0]], dtype=np.float32)
    m = multilabel_validation(logits, y)
    # At 0.5: predicted {0}, {1}, {0}, {} -> 3 of 4 positives found, no false positive.
    assert m["val_micro_f1_at_0.5"] == pytest.approx(2 * 3 / (2 * 3 + 0 + 1))
    assert m["val_subset_accuracy"] >= 0.75
    t = torch.from_numpy(y).float()
    assert m["val_loss"] == pytest.approx(float(torch.nn.functional.binary_cross_entropy_with_logits(torch.from_numpy(logits), t)))


def test_a_loss_that_does_not_fit_the_model_is_refused(tmp_path: Path) -> None:
    texts, _ = multilabel_texts(20, seed=3)
    with pytest.raises(ConfigError, match="single-label loss for a multi_label"):
        trainer_for(tmp_path, texts, Loss())


def test_checkpoint_problem_type_is_checked(tmp_path: Path) -> None:
    texts, sets = multilabel_texts(40, seed=4)
    trainer = trainer_for(tmp_path, texts)
    trainer.cfg.epochs = 1
    data = EncodedDataset(trainer.tokenizer.encode(texts), indicator(sets))
    best = trainer.train(data, data).best_dir
    meta_file = best / "classiformer.json"
    raw = json.loads(meta_file.read_text())
    assert raw["problem_type"] == MULTI_LABEL and raw["thresholds"] is None
    meta_file.write_text(json.dumps({**raw, "problem_type": "regression"}))
    with pytest.raises(CheckpointError, match="problem_type must be"):
        read_meta(best)
    for key, bad in (("thresholds", {"per_label": [0.5], "tuned": [True], "global_threshold": 0.5}),
                     ("thresholds", {"per_label": [0.5, 0.5, "x"], "tuned": [1, 1, 1], "global_threshold": 0.5}),
                     ("temperatures", [1.0, 0.0, 1.0]), ("temperatures", [1.0])):
        meta_file.write_text(json.dumps({**raw, key: bad}))
        with pytest.raises(CheckpointError, match=f"{key} must be null or"):
            read_meta(best)
