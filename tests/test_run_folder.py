"""The run folder under faults: file permissions, crash leftovers, one training process at a time."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from classiformer import Classifier, fit, resolve_config
from classiformer.predict import predict_file

from .conftest import make_texts


def tiny_config(**train: object):
    return resolve_config(
        "tiny", model={"embed_dim": 18, "num_heads": 3, "ff_dim": 23, "hidden_dim": 11},
        tokenizer={"vocab_size": 60, "max_length": 12},
        train={"epochs": 2, "batch_size": 16, "lr": 3e-2, "patience": 0, **train},
    )


@pytest.fixture
def umask() -> Iterator[None]:
    old = os.umask(0o022)
    yield
    os.umask(old)


@pytest.mark.parametrize("mask", [0o022, 0o027])
def test_outputs_get_the_permissions_of_the_umask(tmp_path: Path, umask: None, mask: int) -> None:
    os.umask(mask)
    run = tmp_path / "run"
    fit(tiny_config(), make_texts(60, seed=1), run, progress=False)
    out = tmp_path / "pred.jsonl"
    predict_file(Classifier.load(run), [(1, "goal team"), (2, "bank stock")], out, progress=False)
    modes = {}
    for path in [run, *run.rglob("*"), out]:
        modes[path.relative_to(tmp_path).as_posix()] = stat.S_IMODE(path.stat().st_mode)
    want_dir, want_file = 0o777 & ~mask, 0o666 & ~mask
    for name in ("run/best", "run/last", "run/best/tokenizer"):
        assert modes[name] == want_dir, (name, oct(modes[name]))
    for name in ("run/config.json", "run/metrics.jsonl", "run/best/classiformer.json", "run/best/model.safetensors",
                 "run/last/trainer_state.pt", "pred.jsonl"):
        assert modes[name] == want_file, (name, oct(modes[name]))
    wrong = {k: oct(v) for k, v in modes.items() if v not in (want_dir, want_file)}
    assert not wrong


def test_a_failed_swap_puts_the_previous_checkpoint_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An error (or a second Ctrl-C) between atomic_dir's two renames: the good folder returns."""
    from classiformer.checkpoint import atomic_dir

    dest = tmp_path / "last"
    atomic_dir(dest, lambda d: (d / "a.txt").write_text("good"))
    rename, calls = os.rename, []

    def second_fails(src: object, dst: object) -> None:
        calls.append(dst)
        if len(calls) == 2:
            raise KeyboardInterrupt
        rename(src, dst)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "rename", second_fails)
    with pytest.raises(KeyboardInterrupt):
        atomic_dir(dest, lambda d: (d / "a.txt").write_text("new"))
    assert (dest / "a.txt").read_text() == "good"
    assert [p.name for p in tmp_path.iterdir()] == ["last"]


KILLED_BETWEEN_RENAMES = """
import os, signal, sys
from pathlib import Path

import torch

sys.path.insert(0, sys.argv[2])
from classiformer import fit
from tests.conftest import make_texts
from tests.test_interrupt import tiny_config

rename, into_last = os.rename, []


def rename_then_die(src, dst):
    if Path(dst).name == "last":
        into_last.append(dst)
        if len(into_last) == 2:  # epoch 2's last/: the old one is moved aside, the new one not yet in
            os.kill(os.getpid(), signal.SIGKILL)
    rename(src, dst)


os.rename = rename_then_die
torch.set_num_threads(1)
fit(tiny_config(), make_texts(150, seed=3), Path(sys.argv[1]), progress=False)
"""


def test_kill_9_between_the_renames_is_recovered_on_resume(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    import subprocess
    import sys

    import torch

    from .test_interrupt import assert_same_run
    from .test_interrupt import tiny_config as three_epochs

    cut = tmp_path / "cut"
    proc = subprocess.run([sys.executable, "-c", KILLED_BETWEEN_RENAMES, str(cut), str(Path(__file__).parent.parent)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == -9, proc.stderr
    left = sorted(p.name.split("-")[0] for p in cut.iterdir() if p.name.startswith(".last"))
    assert not (cut / "last").exists() and left == [".last.old", ".last.tmp"]
    resumed = fit(None, make_texts(150, seed=3), cut, resume=True, progress=False)
    assert "recovered last/ from .last.old-" in caplog.text and "removed .last.tmp-" in caplog.text
    assert resumed.history[-1]["epoch"] == 3
    torch.set_num_threads(1)
    fit(three_epochs(), make_texts(150, seed=3), tmp_path / "full", progress=False)
    assert_same_run(tmp_path / "full", cut)


def test_a_file_system_without_locks_warns_and_still_trains(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import errno
    import fcntl

    def no_locks(fd: int, operation: int) -> None:
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    fit(tiny_config(epochs=1), make_texts(60, seed=1), tmp_path / "run", progress=False)
    assert "cannot lock the run folder" in caplog.text and (tmp_path / "run" / "last").exists()
