"""The command line, through its entry point: help, train -> evaluate -> predict, errors."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from classiformer.cli import build_parser, main

from .conftest import make_texts


def write_split(path: Path, n: int, seed: int) -> Path:
    ds = make_texts(n, seed=seed)
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["label", "text"])
        w.writerows(zip(ds.labels or [], ds.texts))
    return path


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cli")
    train = write_split(root / "train.csv", 240, 1)
    test = write_split(root / "test.csv", 60, 2)
    code = main([
        "train", "--train", str(train), "--test", str(test), "--preset", "tiny", "--epochs", "10", "--lr", "0.02",
        "--vocab-size", "80", "--batch-size", "16", "--ngram-buckets", "64", "--output", str(root / "run"), "--no-progress",
    ])
    assert code == 0
    return root


@pytest.mark.parametrize("command", ["train", "evaluate", "predict", "presets"])
def test_every_command_has_help(command: str, capsys) -> None:
    with pytest.raises(SystemExit) as e:
        main([command, "--help"])
    assert e.value.code == 0
    assert "usage: classiformer " + command in capsys.readouterr().out


@pytest.mark.parametrize("command", [["train", "--train", "x.csv"], ["predict", "run", "some text"]])
def test_bf16_and_fp16_exclude_each_other(command: list[str], capsys) -> None:
    with pytest.raises(SystemExit) as e:
        main([*command, "--bf16", "--fp16"])
    assert e.value.code == 2
    assert "not allowed with argument --bf16" in capsys.readouterr().err


def test_top_level_help_lists_commands(capsys) -> None:
    text = build_parser().format_help()
    for command in ("train", "evaluate", "predict", "presets"):
        assert command in text


def test_train_writes_run_folder(cli_run: Path) -> None:
    run = cli_run / "run"
    for name in ("best/model.safetensors", "last/trainer_state.pt", "config.json", "metrics.jsonl",
                 "metrics.json", "confusion_matrix.png", "training_curves.png"):
        assert (run / name).exists(), name
    assert json.loads((run / "config.json").read_text())["model"]["ngram_buckets"] == 64
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["accuracy"] > 0.9 and metrics["train_samples_per_sec"] > 0 and metrics["eval_docs_per_sec"] > 0


def test_evaluate_prints_report(cli_run: Path, capsys) -> None:
    assert main(["evaluate", str(cli_run / "run"), "--test", str(cli_run / "test.csv"), "--no-progress",
                 "--output", str(cli_run / "eval")]) == 0
    out = capsys.readouterr().out
    assert "macro-F1" in out and "confusion matrix" in out
    assert json.loads((cli_run / "eval" / "metrics.json").read_text())["n"] == 60


@pytest.mark.parametrize(
    "args, expected",
    [
        (["goal team match"], ["sports"]),
        (["chip robot code", "bank stock profit"], ["tech", "money"]),
    ],
)
def test_predict_texts(cli_run: Path, capsys, args: list[str], expected: list[str]) -> None:
    assert main(["predict", str(cli_run / "run"), *args]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [x["label"] for x in lines] == expected
    assert all(abs(sum(x["probabilities"].values()) - 1) < 1e-4 for x in lines)


def test_predict_stdin(cli_run: Path, capsys, monkeypatch) -> None:
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO("goal team\n\nbank stock\n"))
    assert main(["predict", str(cli_run / "run")]) == 0
    assert [json.loads(x)["label"] for x in capsys.readouterr().out.splitlines()] == ["sports", "money"]


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_predict_file(cli_run: Path, suffix: str) -> None:
    out = cli_run / f"pred{suffix}"
    assert main(["predict", str(cli_run / "run"), "--input", str(cli_run / "test.csv"), "--output", str(out), "--no-progress"]) == 0
    if suffix == ".csv":
        rows = list(csv.DictReader(out.open()))
        assert len(rows) == 60 and rows[0]["line"] == "2" and set(rows[0]) == {"line", "label", "p_money", "p_sports", "p_tech"}
    else:
        rows = [json.loads(x) for x in out.read_text().splitlines()]
        assert len(rows) == 60 and rows[-1]["line"] == 61


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "--preset", "tiny"], "no train data"),
        (["train", "--train", "missing.csv"], "missing.csv: file not found"),
        (["predict", "nowhere", "x"], "nowhere: no such model folder"),
        (["train", "--train", "{bad}", "--preset", "tiny", "--heads", "5", "--embed-dim", "16"], "divisible"),
        (["train", "--train", "{bad}", "--token-drop", "skip"], "token_drop must be 'unk' or 'delete'"),
        (["train", "--train", "{bad}", "--ngram-buckets", "-1"], "ngram_buckets must not be negative"),
    ],
)
def test_errors_are_clear(argv: list[str], message: str, capsys, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    argv = [str(write_split(tmp_path / "t.csv", 30, 0)) if a == "{bad}" else a for a in argv]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err


def test_bad_row_in_training_file(tmp_path: Path, capsys) -> None:
    p = tmp_path / "t.csv"
    p.write_text("label,text\nsports,goal\ntech\n")
    assert main(["train", "--train", str(p), "--output", str(tmp_path / "r")]) == 1
    assert "t.csv:3: expected 2 fields (as in the header), found 1" in capsys.readouterr().err


def test_resume_flag_continues_a_run(cli_run: Path, capsys) -> None:
    # The run is complete: resuming says so and touches nothing (no retraining, no recalibration).
    run = cli_run / "run"
    epochs = len((run / "metrics.jsonl").read_text().splitlines())
    before = {p: p.stat().st_mtime_ns for p in run.rglob("*") if p.is_file() and p.name != ".lock"}
    assert main(["train", "--train", str(cli_run / "train.csv"), "--output", str(run), "--resume", "--no-progress"]) == 0
    assert f"is complete: {epochs} epoch(s)" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in before} == before


CODES = {"money": "1", "sports": "2", "tech": "3"}


def write_headerless(path: Path, n: int, seed: int, extra: list[list[str]] | None = None) -> Path:
    """AG News' layout: no header, label codes in column 0, the text in column 1."""
    ds = make_texts(n, seed=seed)
    with path.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([[CODES[y], t] for y, t in zip(ds.labels or [], ds.texts)] + (extra or []))
    return path


@pytest.mark.parametrize("spec", ["Finance,Sport,Technology", "names.json"])
def test_label_names_name_the_codes_of_a_headerless_csv(spec: str, tmp_path: Path, capsys) -> None:
    if spec.endswith(".json"):
        spec = str(tmp_path / spec)
        Path(spec).write_text(json.dumps({"1": "Finance", "2": "Sport", "3": "Technology"}))
    train, test = write_headerless(tmp_path / "train.csv", 240, 1), write_headerless(tmp_path / "test.csv", 60, 2)
    run = tmp_path / "run"
    assert main(["train", "--train", str(train), "--test", str(test), "--no-header", "--label-column", "0",
                 "--text-column", "1", "--label-names", spec, "--preset", "tiny", "--epochs", "6", "--lr", "0.02",
                 "--vocab-size", "80", "--batch-size", "16", "--output", str(run), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "Technology" in out and "\n1 " not in out
    names = ["Finance", "Sport", "Technology"]
    assert json.loads((run / "best" / "classiformer.json").read_text())["labels"] == names
    assert json.loads((run / "metrics.json").read_text())["labels"] == names
    assert main(["predict", str(run), "goal team match", "bank stock profit"]) == 0
    preds = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [p["label"] for p in preds] == ["Sport", "Finance"] and set(preds[0]["probabilities"]) == set(names)


@pytest.mark.parametrize(
    "names, extra, message",
    [
        ("A,B", None, "train.csv: --label-names gives 2 name(s) ['A', 'B'] for 3 label(s) ['1', '2', '3']"),
        ("A,B,A", None, "two classes are named 'A'"),
        ("A,B,C", [["4", "goal"]], "test.csv:31: unknown class '4'"),
        ("{missing}.json", None, "missing.json: file not found"),
    ],
)
def test_label_names_errors_are_clear(names: str, extra, message: str, tmp_path: Path, capsys) -> None:
    train = write_headerless(tmp_path / "train.csv", 30, 1)
    test = write_headerless(tmp_path / "test.csv", 30, 2, extra)
    assert main(["train", "--train", str(train), "--test", str(test), "--no-header", "--label-names",
                 names.replace("{missing}", str(tmp_path / "missing")), "--preset", "tiny",
                 "--output", str(tmp_path / "r"), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err, err


def write_topic_csv(path: Path, n: int, seed: int, header: bool) -> Path:
    """The README's layout: a topic and the text split over title and body (or the same, headerless)."""
    ds = make_texts(n, seed=seed)
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        if header:
            w.writerow(["id", "topic", "title", "body"])
        for i, (y, t) in enumerate(zip(ds.labels or [], ds.texts)):
            words = t.split()
            w.writerow([i, y, " ".join(words[:2]), " ".join(words[2:]) or "."])
    return path


LAYOUTS = {
    "named": (True, ["--text-column", "title", "--text-column", "body", "--label-column", "topic"]),
    "headerless": (False, ["--no-header", "--label-column", "1", "--text-column", "2", "--text-column", "3"]),
}


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_evaluate_calibrate_and_predict_reuse_the_runs_columns(layout: str, tmp_path: Path, capsys) -> None:
    header, flags = LAYOUTS[layout]
    train = write_topic_csv(tmp_path / "train.csv", 240, 1, header)
    test = write_topic_csv(tmp_path / "test.csv", 60, 2, header)
    run = tmp_path / "run"
    assert main(["train", "--train", str(train), *flags, "--preset", "tiny", "--epochs", "6", "--lr", "0.02",
                 "--vocab-size", "80", "--batch-size", "16", "--output", str(run), "--no-progress"]) == 0
    data = json.loads((run / "config.json").read_text())["data"]
    assert data == json.loads((run / "best" / "classiformer.json").read_text())["data"]
    assert data["header"] is header and len(data["text"]) == 2
    capsys.readouterr()
    # The README's own commands, with no column options: the run's settings are used.
    assert main(["evaluate", str(run), "--test", str(test), "--output", str(tmp_path / "eval"), "--no-progress"]) == 0
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["n"] == 60
    assert main(["calibrate", str(run), "--data", str(test), "--no-progress"]) == 0
    assert "calibration data:" in capsys.readouterr().out
    out = tmp_path / "pred.jsonl"
    assert main(["predict", str(run), "--input", str(test), "--output", str(out), "--no-progress"]) == 0
    assert len(out.read_text().splitlines()) == 60
    # Options given on the command line still win, one by one.
    other = ["--label-column", "nope"] if header else ["--label-column", "7"]
    assert main(["evaluate", str(run), "--test", str(test), *other, "--output", str(tmp_path / "e2")]) == 1
    err = capsys.readouterr().err
    assert ("missing column 'nope'" if header else "expected at least 8 fields") in err, err
    one = ["--text-column", "title"] if header else ["--text-column", "2"]
    assert main(["evaluate", str(run), "--test", str(test), *one, "--output", str(tmp_path / "e3"), "--no-progress"]) == 0


def test_header_option_overrides_a_headerless_run(tmp_path: Path, capsys) -> None:
    header, flags = LAYOUTS["headerless"]
    train = write_topic_csv(tmp_path / "train.csv", 120, 1, header=False)
    run = tmp_path / "run"
    assert main(["train", "--train", str(train), *flags, "--preset", "tiny", "--epochs", "1",
                 "--vocab-size", "80", "--output", str(run), "--no-progress"]) == 0
    with_header = write_topic_csv(tmp_path / "test.csv", 30, 2, header=True)
    # Read as headerless (the run's setting), the header row is an example whose label 'topic' is unknown.
    assert main(["evaluate", str(run), "--test", str(with_header), "--output", str(tmp_path / "e")]) == 1
    assert "test.csv:1: label 'topic' was not seen in training" in capsys.readouterr().err
    assert main(["evaluate", str(run), "--test", str(with_header), "--header", "--label-column", "topic",
                 "--text-column", "title", "--text-column", "body", "--output", str(tmp_path / "e"), "--no-progress"]) == 0


def test_train_with_many_classes_prints_pairs_not_a_matrix(tmp_path: Path, capsys, monkeypatch) -> None:
    # 12 classes: a matrix over 100 columns wide; the terminal gets the most-confused pairs instead.
    topics = {f"topic{i:02d}": [f"word{i}a", f"word{i}b", f"word{i}c"] for i in range(12)}
    files = {}
    for split, n, seed in (("train", 240, 1), ("test", 96, 2)):
        ds = make_texts(n, seed=seed, labels=topics)
        files[split] = tmp_path / f"{split}.jsonl"
        files[split].write_text("".join(json.dumps({"text": t, "label": y}) + "\n" for t, y in zip(ds.texts, ds.labels or [])))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "100")
    assert main(["train", "--train", "train.jsonl", "--test", "test.jsonl", "--preset", "tiny", "--epochs", "1",
                 "--vocab-size", "60", "--output", "run", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "confusion matrix (rows" not in out and "most confused pairs (true -> predicted, of 12 classes)" in out
    assert "the full 12x12 confusion matrix is drawn in run/confusion_matrix.png" in out
    assert max(len(line) for line in out.splitlines()) <= 100
