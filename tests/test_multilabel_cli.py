"""The CLI with multi-label data: --label-sep, --pos-weight, label lists in predict output, --threshold."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

from classiformer.checkpoint import read_meta
from classiformer.cli import main

from .test_multilabel_training import NAMES, multilabel_texts

TINY = ["--preset", "tiny", "--embed-dim", "18", "--heads", "3", "--ff-dim", "23", "--hidden-dim", "11",
        "--dropout", "0", "--vocab-size", "60", "--max-length", "12", "--batch-size", "16", "--lr", "0.03",
        "--patience", "0", "--no-progress"]


def write_csv(path: Path, n: int, seed: int) -> Path:
    texts, sets = multilabel_texts(n, seed)
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        w.writerows([t, "|".join(s)] for t, s in zip(texts, sets))
    return path


def test_train_predict_multi_label_csv(tmp_path: Path, capsys) -> None:
    train, test = write_csv(tmp_path / "train.csv", 400, 0), write_csv(tmp_path / "test.csv", 120, 5)
    run = tmp_path / "run"
    assert main(["train", "--train", str(train), "--label-sep", "|", "--pos-weight", "auto",
                 "--epochs", "12", "--output", str(run), *TINY]) == 0
    assert "best validation micro-F1" in capsys.readouterr().out
    assert main(["predict", str(run), "goal team stock market", "the a of today"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["labels"] for r in rows] == [["money", "sports"], []] and set(rows[0]["probabilities"]) == set(NAMES)
    assert main(["predict", str(run), "the a of today", "--threshold", "0"]) == 0
    assert json.loads(capsys.readouterr().out)["labels"] == NAMES
    # Files: CSV joins the labels with "|", JSONL lists them; the label separator of training is reused.
    out_csv, out_jsonl = tmp_path / "p.csv", tmp_path / "p.jsonl"
    assert main(["predict", str(run), "--input", str(test), "--output", str(out_csv), "--no-progress"]) == 0
    assert main(["predict", str(run), "--input", str(test), "--output", str(out_jsonl), "--no-progress"]) == 0
    table = list(csv.DictReader(out_csv.open()))
    listed = [json.loads(line) for line in out_jsonl.read_text().splitlines()]
    assert len(table) == len(listed) == 120 and list(table[0])[:2] == ["line", "labels"]
    assert [r["labels"] for r in table] == ["|".join(r["labels"]) for r in listed]
    assert main(["evaluate", str(run), "--test", str(test), "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "micro" in text and "subset accuracy" in text and "calibration (a temperature per label)" in text
    assert json.loads((run / "metrics.json").read_text())["micro_f1"] > 0.9
    # calibrate refits the temperatures and thresholds on other held-out data and stores them.
    before = read_meta(run / "best").thresholds
    assert main(["calibrate", str(run), "--data", str(test), "--no-progress"]) == 0
    # Per label, one global threshold or the untuned 0.5, whichever wins out of fold (thresholds.choose_thresholds).
    out = capsys.readouterr().out
    assert re.search(r"thresholds: (\d tuned per label|one global threshold 0\.\d{3} for every label|0\.5 for every label, untuned)", out), out
    after = read_meta(run / "best")
    assert after.thresholds != before and after.extra["thresholds"]["n"] == 120
    truth = [r["label"] for r in csv.DictReader(test.open())]
    assert sum(r["labels"] == t for r, t in zip(table, truth)) / len(truth) > 0.7  # subset accuracy


def test_class_weight_flag_and_bad_combinations(tmp_path: Path, capsys) -> None:
    train = write_csv(tmp_path / "train.csv", 60, 0)
    code = main(["train", "--train", str(train), "--label-sep", "|", "--class-weight", "balanced", "--epochs", "1",
                 "--output", str(tmp_path / "r"), *TINY])
    assert code == 1 and "class weights are for single-label models" in capsys.readouterr().err
