"""Temperature scaling: fitting, storing, applying, reporting; and choosing the model family."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from classiformer import Classifier, evaluate, fit, resolve_config, write_evaluation
from classiformer.calibration import calibration_report, ece, fit_temperature, nll
from classiformer.checkpoint import read_meta
from classiformer.cli import main
from classiformer.config import ConfigError
from classiformer.inference import softmax

from .conftest import make_texts


def overconfident(n: int = 600, classes: int = 3, accuracy: float = 0.7, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Logits that always put ~99.99% on one class, which is right only ``accuracy`` of the time."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    wrong = rng.random(n) > accuracy
    pred = np.where(wrong, (labels + rng.integers(1, classes, n)) % classes, labels)
    logits = rng.normal(0, 0.3, (n, classes))
    logits[np.arange(n), pred] += 10.0
    return logits.astype(np.float32), labels


def test_temperature_scaling_fixes_an_overconfident_model() -> None:
    logits, labels = overconfident()
    t = fit_temperature(logits, labels)
    assert t > 3.0  # it must soften a model that claims certainty while right 70% of the time
    assert nll(logits, labels, t) < 0.5 * nll(logits, labels)
    assert ece(softmax(logits, t), labels) < 0.05 < ece(softmax(logits), labels)
    # The fitted T is the NLL minimum: nearby temperatures do no better.
    for other in (0.8 * t, 1.25 * t):
        assert nll(logits, labels, other) > nll(logits, labels, t)
    # Never changes the predicted class.
    assert (softmax(logits, t).argmax(1) == logits.argmax(1)).all()


def test_a_calibrated_model_keeps_temperature_near_one() -> None:
    rng = np.random.default_rng(1)
    logits = rng.normal(0, 2, (4000, 4))
    p = softmax(logits)
    labels = np.array([rng.choice(4, p=row) for row in p])  # labels drawn from the model's own beliefs
    assert fit_temperature(logits, labels) == pytest.approx(1.0, abs=0.1)


def test_ece_by_hand() -> None:
    proba = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.3, 0.7]])
    labels = np.array([0, 1, 0, 1])
    # bins (15 equal-width): {0.9, 0.9} acc 0.5 -> |0.5 - 0.9| * 2/4; {0.6} acc 1 -> 0.4/4; {0.7} acc 1 -> 0.3/4
    assert ece(proba, labels) == pytest.approx(0.4 * 2 / 4 + 0.4 / 4 + 0.3 / 4)
    report = calibration_report(np.log(proba), labels, 1.0)
    assert report["nll"] == pytest.approx(report["nll_uncalibrated"])
    assert sum(report["reliability"]["count"]) == 4


def test_fit_temperature_rejects_empty() -> None:
    with pytest.raises(ValueError, match="zero examples"):
        fit_temperature(np.zeros((0, 2)), np.zeros(0, dtype=int))


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cal")
    cfg = resolve_config("tiny", model={"embed_dim": 18, "num_heads": 3, "ff_dim": 23, "hidden_dim": 11},
                         tokenizer={"vocab_size": 60, "max_length": 12},
                         train={"epochs": 3, "batch_size": 16, "lr": 1e-2, "patience": 0, "val_fraction": 0.3})
    result = fit(cfg, make_texts(240, seed=1), root / "run", progress=False)
    assert result.temperature != 1.0
    return root / "run"


def test_training_stores_the_validation_temperature(run: Path) -> None:
    meta = read_meta(run / "best")
    info = meta.extra["calibration"]
    assert meta.temperature == info["temperature"] != 1.0
    assert info["source"] == "validation split" and info["n"] == 72
    assert info["nll"] <= info["nll_uncalibrated"]
    clf = Classifier.load(run)
    assert clf.temperature == meta.temperature
    texts = make_texts(10, seed=3).texts
    np.testing.assert_allclose(clf.predict_proba(texts), softmax(clf.logits(texts), meta.temperature), rtol=1e-5)


def test_evaluate_reports_calibration_and_draws_reliability(run: Path, tmp_path: Path) -> None:
    clf = Classifier.load(run)
    report = evaluate(clf, make_texts(60, seed=2), progress=False)
    for key in ("nll", "ece", "nll_uncalibrated", "ece_uncalibrated"):
        assert 0.0 <= report[key] < 5.0
    assert report["temperature"] == clf.temperature
    paths = write_evaluation(report, tmp_path)
    assert paths["reliability"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    metrics = json.loads(paths["metrics"].read_text())
    assert {"accuracy", "macro_f1", "confusion_matrix", "nll", "ece", "ece_uncalibrated"} <= set(metrics)


def test_calibrate_cli_refits_and_predict_uses_it(run: Path, tmp_path: Path, capsys) -> None:
    data = tmp_path / "held.csv"
    ds = make_texts(90, seed=7)
    with data.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["label", "text"])
        w.writerows(zip(ds.labels or [], ds.texts))
    before = Classifier.load(run).predict_proba(["the team"])
    assert main(["calibrate", str(run), "--data", str(data), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "temperature" in out and "NLL" in out
    meta = read_meta(run / "best")
    assert meta.extra["calibration"]["source"] == str(data) and meta.extra["calibration"]["n"] == 90
    after = Classifier.load(run).predict_proba(["the team"])
    assert before.argmax() == after.argmax() and not np.allclose(before, after)


def test_choosing_the_family(tmp_path: Path, capsys) -> None:
    assert resolve_config("rnn-attention").family == "rnn-attention"
    assert resolve_config("lesson").family == "transformer"
    with pytest.raises(ConfigError, match="is for 'transformer' models"):
        resolve_config("lesson", family="rnn-attention")
    with pytest.raises(ConfigError, match="unknown key"):
        resolve_config("rnn-attention", model={"num_heads": 2})
    data = tmp_path / "train.csv"
    ds = make_texts(120, seed=1)
    with data.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["label", "text"])
        w.writerows(zip(ds.labels or [], ds.texts))
    code = main(["train", "--train", str(data), "--model", "rnn-attention", "--epochs", "1", "--embed-dim", "9",
                 "--hidden-dim", "5", "--vocab-size", "50", "--output", str(tmp_path / "rnn"), "--no-progress"])
    assert code == 0
    assert read_meta(tmp_path / "rnn" / "best").family == "rnn-attention"
    assert json.loads((tmp_path / "rnn" / "config.json").read_text())["model"]["hidden_dim"] == 5


@pytest.mark.parametrize("command", ["explain", "calibrate"])
def test_new_commands_have_help(command: str, capsys) -> None:
    with pytest.raises(SystemExit) as e:
        main([command, "--help"])
    assert e.value.code == 0
    assert "usage: classiformer " + command in capsys.readouterr().out
