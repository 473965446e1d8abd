"""``classiformer predict`` output: the same rows on stdout as in a JSONL file, and a reader that
stops early (``| head``) ends the command quietly."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import classiformer
from classiformer import resolve_config
from classiformer.cli import main

from .conftest import make_texts


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("predict-output") / "run"
    config = resolve_config("tiny", train={"epochs": 1, "batch_size": 16})
    classiformer.fit(config, make_texts(60, seed=3), folder, progress=False)
    return folder


def stdout_rows(capsys: pytest.CaptureFixture[str]) -> list[dict]:
    return [json.loads(x) for x in capsys.readouterr().out.splitlines()]


def test_stdout_rows_are_the_jsonl_file_rows(run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "texts.txt"
    source.write_text("goal team match\n\nbank stock profit\nchip robot code\n", encoding="utf-8")
    out = tmp_path / "pred.jsonl"
    assert main(["predict", str(run), "--input", str(source), "--output", str(out), "--no-progress"]) == 0
    capsys.readouterr()
    from_file = [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines()]
    assert main(["predict", str(run), "--input", str(source), "--no-progress"]) == 0
    assert stdout_rows(capsys) == from_file
    assert [r["line"] for r in from_file] == [1, 3, 4]  # the file's own line numbers


def test_arguments_and_stdin_rows_carry_their_line(run: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    assert main(["predict", str(run), "goal team", "bank stock"]) == 0
    rows = stdout_rows(capsys)
    assert [r["line"] for r in rows] == [1, 2]
    assert list(rows[0]) == ["line", "label", "probabilities"]
    monkeypatch.setattr("sys.stdin", io.StringIO("goal team\n\nbank stock\r\n"))
    assert main(["predict", str(run)]) == 0
    rows = stdout_rows(capsys)
    assert [r["line"] for r in rows] == [1, 3]  # the blank line 2 shows as a gap


def test_a_reader_that_stops_early_ends_it_quietly(run: Path, tmp_path: Path) -> None:
    # Far more output than a pipe buffers (64 KiB), so predict is still writing when head exits.
    source = tmp_path / "many.txt"
    source.write_text("".join(f"goal team match number {i}\n" for i in range(4000)), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    predict = subprocess.Popen(
        [sys.executable, "-m", "classiformer", "predict", str(run), "--input", str(source), "--no-progress"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
    )
    assert predict.stdout is not None and predict.stderr is not None
    head = subprocess.run(["head", "-3"], stdin=predict.stdout, capture_output=True, timeout=60)
    predict.stdout.close()  # only head holds the pipe's read end, as in a shell pipeline
    try:
        code = predict.wait(timeout=60)
    finally:
        if predict.poll() is None:
            predict.kill()
    err = predict.stderr.read().decode()
    predict.stderr.close()
    assert len(head.stdout.splitlines()) == 3
    assert json.loads(head.stdout.splitlines()[0])["line"] == 1
    assert "Traceback" not in err and "BrokenPipe" not in err and "Exception ignored" not in err, err
    assert code == 128 + signal.SIGPIPE  # what `cat` reports in a `set -o pipefail` pipeline
