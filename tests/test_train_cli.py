"""``classiformer train`` under faults: SIGTERM from outside, --resume of finished runs and with
changed flags, unknown test labels, two processes into one run folder."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from classiformer.cli import main

from .test_cli import write_split
from .test_interrupt import assert_same_run

TINY = ["--preset", "tiny", "--vocab-size", "60", "--max-length", "12", "--batch-size", "16", "--lr", "0.03",
        "--patience", "0", "--threads", "1", "--no-progress"]


def train_args(root: Path, out: Path, *extra: str) -> list[str]:
    return ["train", "--train", str(root / "train.csv"), "--output", str(out), *TINY, *extra]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("data")
    write_split(root / "train.csv", 150, 3)
    return root


@pytest.fixture(scope="module")
def finished(data: Path) -> Path:
    """A complete 3-epoch run."""
    assert main(train_args(data, data / "done", "--epochs", "3")) == 0
    return data / "done"


def test_sigterm_saves_says_so_exits_143_and_resume_is_exact(data: Path, tmp_path: Path) -> None:
    """What a scheduler, `timeout` or `docker stop` sends, through a real process."""
    epochs = ["--epochs", "6", "--checkpoint-every", "4"]
    args = [sys.executable, "-m", "classiformer", *train_args(data, tmp_path / "cut", *epochs)]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    state = tmp_path / "cut" / "last" / "trainer_state.pt"
    deadline = time.monotonic() + 120
    while not state.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "stopped by SIGTERM at epoch" in err and "--resume" in err, err
    history = (tmp_path / "cut" / "metrics.jsonl")
    assert not history.exists() or len(history.read_text().splitlines()) < 6, "it was stopped before the end"
    assert main(train_args(data, tmp_path / "cut", *epochs, "--resume")) == 0
    assert main(train_args(data, tmp_path / "full", *epochs)) == 0
    assert_same_run(tmp_path / "full", tmp_path / "cut")


def test_resume_of_a_finished_run_does_nothing(finished: Path, data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = {p: p.stat().st_mtime_ns for p in finished.rglob("*") if p.is_file() and p.name != ".lock"}
    assert main(train_args(data, finished, "--epochs", "3", "--resume")) == 0
    out = capsys.readouterr().out
    assert "is complete: 3 epoch(s)" in out and "nothing to do" in out
    assert {p: p.stat().st_mtime_ns for p in before} == before


def test_resume_with_more_epochs_continues_on_a_stretched_schedule(finished: Path, data: Path, tmp_path: Path) -> None:
    from classiformer.training import lr_lambda

    run = tmp_path / "more"
    shutil.copytree(finished, run)
    assert main(train_args(data, run, "--epochs", "5", "--resume")) == 0
    history = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    old = [json.loads(x) for x in (finished / "metrics.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in history] == [1, 2, 3, 4, 5] and history[:3] == old
    assert json.loads((run / "config.json").read_text())["train"]["epochs"] == 5
    # From the first resumed step on, the rate is the one a 5-epoch run has at that step.
    steps = history[0]["step"]
    schedule = lr_lambda("linear", int(0.1 * 5 * steps), 5 * steps)
    for h in history[3:]:
        assert h["lr"] == pytest.approx(0.03 * schedule(h["step"]), rel=1e-12)
    assert history[2]["lr"] == pytest.approx(0.0, abs=1e-12)  # where the 3-epoch schedule ended


@pytest.mark.parametrize(
    "flags, named",
    [
        (["--lr", "0.5"], ["--lr (0.03 -> 0.5)"]),
        (["--batch-size", "8", "--embed-dim", "20"], ["--batch-size (16 -> 8)", "--embed-dim (16 -> 20)"]),
        (["--preset", "lesson"], ["'tiny'", "'lesson'"]),
    ],
)
def test_resume_refuses_flags_that_cannot_change(
    finished: Path, data: Path, capsys: pytest.CaptureFixture[str], flags: list[str], named: list[str]
) -> None:
    args = train_args(data, finished, "--resume")
    for flag in ("--lr", "--batch-size", "--preset"):  # the run's own values, then the changes asked for
        if flag in flags:
            i = args.index(flag)
            del args[i : i + 2]
    before = {p: p.stat().st_mtime_ns for p in finished.rglob("*") if p.is_file() and p.name != ".lock"}
    assert main([*args, *flags, "--epochs", "6"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and all(n in err for n in named), err
    assert {p: p.stat().st_mtime_ns for p in before} == before


def test_unknown_test_and_validation_labels_fail_before_training(data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("label,text\nsports,goal team\nweather,rain today\n")
    for split in ("--test", "--validation"):
        out = tmp_path / split.strip("-")
        assert main(train_args(data, out, "--epochs", "3", split, str(bad))) == 1
        err = capsys.readouterr().err
        assert f"{bad}:3: label 'weather' was not seen in training" in err, err
        assert not [p.name for p in out.rglob("*") if p.name != ".lock"], "nothing written"


def test_a_second_train_into_a_busy_run_folder_is_refused(data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                          caplog: pytest.LogCaptureFixture) -> None:
    """Two real processes: one holds the run folder, the other is refused with the holder's pid;
    once the holder is killed (-9, no clean-up), its lock is taken over with a warning."""
    run = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pathlib import Path; from classiformer.training import RunLock\n"
         "with RunLock(Path(sys.argv[1])):\n    print('held', flush=True)\n    time.sleep(120)\n", str(run)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        assert main(train_args(data, run, "--epochs", "1")) == 1
        err = capsys.readouterr().err
        assert f"is in use by another training run (pid {holder.pid} on " in err, err
        assert not (run / "last").exists() and not (run / "config.json").exists()
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
    assert main(train_args(data, run, "--epochs", "1")) == 0
    assert f"taking over the lock of pid {holder.pid}" in caplog.text
    assert (run / "last").exists() and (run / ".lock").read_text() == "", "released when done"
