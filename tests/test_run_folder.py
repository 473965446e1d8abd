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
