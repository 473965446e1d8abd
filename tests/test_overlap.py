"""Texts shared by training and evaluation data are reported (data/overlap.py), by fit and by train --test."""

from __future__ import annotations

import csv
import logging
from pathlib import Path

from classiformer import fit, resolve_config
from classiformer.cli import main
from classiformer.data import TextDataset, read_dataset
from classiformer.data.overlap import overlap

from .conftest import make_texts


def write_csv(path: Path, rows: list[tuple[str, str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["label", "text"])
        w.writerows(rows)
    return path


def test_overlap_folds_case_and_spacing_and_names_the_lines():
    other = TextDataset(["A  new one", "Seen before", "fresh text", "seen\tBEFORE "], ["x"] * 4, source="test.csv",
                        lines=[2, 3, 4, 5])
    found = overlap(["seen before", "a new one"], other)
    assert (found.shared, found.total, found.lines) == (3, 4, (2, 3, 5))
    note = found.note("test")
    assert note is not None and "test (test.csv): 3 of 4 texts (75.0%)" in note and "line 2, 3, 5" in note
    assert overlap(["nothing alike"], other).note("test") is None


def test_fit_warns_when_the_validation_split_repeats_training_texts(tmp_path, caplog):
    ds = make_texts(120, seed=3)
    rows = list(zip(ds.labels or [], ds.texts))
    path = write_csv(tmp_path / "train.csv", rows + rows[:60])  # 60 rows twice: a random split puts copies on both sides
    train = read_dataset(path)
    config = resolve_config("tiny", train={"epochs": 1})
    with caplog.at_level(logging.WARNING, logger="classiformer"):
        fit(config, train, tmp_path / "dup", progress=False)
    warned = [r.getMessage() for r in caplog.records if "also occur in the training data" in r.getMessage()]
    assert len(warned) == 1 and warned[0].startswith(f"validation ({path})")

    caplog.clear()
    clean = read_dataset(write_csv(tmp_path / "clean.csv", rows))
    with caplog.at_level(logging.WARNING, logger="classiformer"):
        fit(config, clean, tmp_path / "clean", progress=False)
    assert not [r for r in caplog.records if "also occur in the training data" in r.getMessage()]


def test_train_command_warns_about_test_rows_seen_in_training(tmp_path, caplog):
    ds = make_texts(100, seed=4)
    rows = list(zip(ds.labels or [], ds.texts))
    train = write_csv(tmp_path / "train.csv", rows[:80])
    test = write_csv(tmp_path / "test.csv", rows[75:])  # 5 of its 25 rows are training rows (file lines 2-6)
    with caplog.at_level(logging.WARNING, logger="classiformer"):
        code = main(["train", "--train", str(train), "--test", str(test), "--preset", "tiny", "--epochs", "1",
                     "--output", str(tmp_path / "run"), "--no-progress"])
    assert code == 0
    warned = [r.getMessage() for r in caplog.records if r.getMessage().startswith(f"test ({test})")]
    assert len(warned) == 1 and "5 of 25 texts (20.0%)" in warned[0] and "first at line 2, 3, 4" in warned[0]
