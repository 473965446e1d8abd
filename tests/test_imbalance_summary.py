"""Imbalanced single-label data: the printed summaries of ``train`` and ``evaluate`` lead with
macro-F1 beside accuracy, and say why, once the largest class has ``IMBALANCE_RATIO`` times the
examples of the smallest; balanced data keeps the plain table."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from classiformer.cli import main
from classiformer.metrics import IMBALANCE_RATIO, classification_report, format_report, imbalance

from .conftest import make_texts


def test_imbalance_ratio_and_its_boundary() -> None:
    assert IMBALANCE_RATIO == 3.0
    assert imbalance({"a": 30, "b": 10, "c": 20}) == ("a", 30, "b", 10)  # exactly 3x: imbalanced
    assert imbalance({"a": 29, "b": 10}) is None  # 2.9x: not
    assert imbalance({"a": 10, "b": 10, "gone": 0}) is None  # a class absent from the data is no small class
    assert imbalance({"a": 100}) is None


def report(counts: list[int], seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(len(counts)), counts)
    pred = np.where(rng.random(len(y)) < 0.8, y, 0)  # wrong answers go to the largest class
    return classification_report(y, pred, [f"c{i}" for i in range(len(counts))])


def test_an_imbalanced_report_leads_with_macro_f1_and_a_note() -> None:
    r = report([300, 90, 30, 9])
    lines = format_report(r).splitlines()
    assert lines[0] == f"macro-F1 {r['macro_f1']:.4f}   accuracy {r['accuracy']:.4f}"
    assert "imbalanced classes in this data: c0 has 33.3x the examples of c3 (300 vs 9" in lines[1]
    assert "macro-F1 weighs every class equally" in lines[1]
    assert lines[3].startswith("class ")


def test_a_balanced_report_keeps_the_plain_table() -> None:
    text = format_report(report([100, 90, 80]))
    assert text.splitlines()[0].startswith("class ") and "imbalanced" not in text


def write(path: Path, counts: dict[str, int], seed: int) -> Path:
    """Toy topics with ``counts[label]`` examples of each label."""
    ds = make_texts(3 * max(counts.values()), seed=seed)
    rows, left = [], dict(counts)
    for text, label in zip(ds.texts, ds.labels or []):
        if left[label] > 0:
            rows.append((label, text))
            left[label] -= 1
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["label", "text"])
        w.writerows(rows)
    return path


TINY = ["--preset", "tiny", "--epochs", "2", "--lr", "0.02", "--vocab-size", "60", "--batch-size", "16",
        "--ngram-buckets", "32", "--no-progress"]


@pytest.mark.parametrize("skewed", [True, False])
def test_train_and_evaluate_summaries(skewed: bool, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    counts = {"sports": 120, "tech": 40, "money": 12} if skewed else {"sports": 50, "tech": 45, "money": 40}
    train = write(tmp_path / "train.csv", counts, seed=1)
    test = write(tmp_path / "test.csv", {k: max(3, v // 2) for k, v in counts.items()}, seed=2)
    run = tmp_path / "run"
    assert main(["train", "--train", str(train), "--test", str(test), "--output", str(run), *TINY]) == 0
    out = capsys.readouterr().out.splitlines()
    trained = next(i for i, line in enumerate(out) if line.startswith("trained "))
    tested = out.index(f"test set: {test}")
    assert main(["evaluate", str(run), "--test", str(test), "--no-progress"]) == 0
    evaluated = capsys.readouterr().out.splitlines()
    if skewed:
        # The training summary: the best epoch's validation macro-F1 first, then accuracy, then why.
        assert "best validation macro-F1 " in out[trained] and ", accuracy " in out[trained], out[trained]
        assert out[trained + 1].startswith("imbalanced classes in the training data: sports has 10.0x the examples of money")
        for lines, at in ((out, tested + 1), (evaluated, 1)):  # the test report, after train and from evaluate
            assert lines[at].startswith("macro-F1 ") and "   accuracy " in lines[at], lines[at]
            assert lines[at + 1].startswith("imbalanced classes in this data: sports has 10.0x the examples of money")
    else:
        assert "best validation accuracy " in out[trained] and "macro-F1" not in out[trained]
        assert out[tested + 1].startswith("class ") and evaluated[1].startswith("class ")
        assert not any("imbalanced" in line for line in out + evaluated)
