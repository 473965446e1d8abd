"""Exact resume after SIGINT/SIGTERM: real signals, sent to this process at every phase of training
(inside an optimizer step, during validation, while best/ or last/ is renamed into place), must
leave a run that ``resume=True`` continues to the very tensors and history of a run never stopped."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from torch.optim.optimizer import register_optimizer_step_post_hook

from classiformer import fit, resolve_config
from classiformer.checkpoint import load_checkpoint, read_meta
from classiformer.training import TrainingInterrupted

from .conftest import make_texts
from .test_pretrained import config_for, tiny_bert  # noqa: F401  (tiny_bert is a fixture)

TIMING = ("train_samples_per_sec", "train_seconds")
STEPS_PER_EPOCH = 9  # 150 examples, 10% held out, batches of 16


def tiny_config(**train: Any):
    return resolve_config(
        "tiny",
        model={"embed_dim": 18, "num_heads": 3, "ff_dim": 23, "hidden_dim": 11, "dropout": 0.1},
        tokenizer={"vocab_size": 60, "max_length": 12},
        train={"epochs": 3, "batch_size": 16, "lr": 3e-2, "patience": 0, **train},
    )


def untimed(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k not in TIMING} for r in records]


def assert_same_tensors(a: Any, b: Any, where: str) -> None:
    """Every tensor and value of two (nested) states is bit for bit the same."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape, where
        assert torch.equal(a, b), f"{where}: differs by up to {float((a.double() - b.double()).abs().max()):.3g}"
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), (where, set(a) ^ set(b))
        for k in a:
            assert_same_tensors(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_tensors(x, y, f"{where}[{i}]")
    else:
        assert a == b, (where, a, b)


def assert_same_run(full: Path, cut: Path) -> None:
    """best/ and last/ weights, the whole trainer state (optimizer, scheduler, scaler, RNG,
    progress) and the history are those of the uninterrupted run."""
    for name in ("best", "last"):
        a, _, meta_a = load_checkpoint(full / name)
        b, _, meta_b = load_checkpoint(cut / name)
        assert_same_tensors(a.state_dict(), b.state_dict(), f"{name}/weights")
        assert meta_a.temperature == meta_b.temperature, name
    sa = torch.load(full / "last" / "trainer_state.pt", weights_only=True)
    sb = torch.load(cut / "last" / "trainer_state.pt", weights_only=True)
    ha, hb = json.loads(sa.pop("history")), json.loads(sb.pop("history"))
    assert untimed(ha) == untimed(hb)
    for s in (sa, sb):
        for key in TIMING:
            s["progress"].pop(key, None)
    assert_same_tensors(sa, sb, "trainer_state")
    lines = [untimed([json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]) for run in (full, cut)]
    assert lines[0] == lines[1] == untimed(ha)
    assert not [p.name for p in cut.iterdir() if ".tmp-" in p.name or ".old-" in p.name], "crash leftovers"


def kill_self(signum: int) -> None:
    os.kill(os.getpid(), signum)


@pytest.fixture
def deliver(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str, int, int], None]]:
    """``deliver(phase, n, signum)`` arranges for ``signum`` to reach this process during the
    ``n``-th occurrence of ``phase``: ``step`` (from an optimizer step post-hook), ``validation``
    (inside the forward pass of its first batch), ``best`` / ``last`` (between the two renames
    that put a checkpoint folder in place)."""
    handles: list[Any] = []

    def arrange(phase: str, n: int, signum: int) -> None:
        seen = [0]

        def due() -> bool:
            seen[0] += 1
            return seen[0] == n

        if phase == "step":
            def hook(optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
                if isinstance(optimizer, torch.optim.AdamW) and due():
                    kill_self(signum)

            handles.append(register_optimizer_step_post_hook(hook))
        elif phase == "validation":
            import classiformer.training as training

            original = training.logits_for

            def logits_for(model: torch.nn.Module, *args: Any, **kwargs: Any) -> Any:
                if kwargs.get("cache_key") != "val" or not due():
                    return original(model, *args, **kwargs)
                fired: list[bool] = []

                def once(*_: Any) -> None:
                    if not fired:
                        fired.append(True)
                        kill_self(signum)

                handle = model.register_forward_pre_hook(once)
                try:
                    return original(model, *args, **kwargs)
                finally:
                    handle.remove()

            monkeypatch.setattr(training, "logits_for", logits_for)
        else:
            rename = os.rename

            def between_renames(src: Any, dst: Any) -> None:
                if Path(dst).name == phase and due():
                    kill_self(signum)
                rename(src, dst)

            monkeypatch.setattr(os, "rename", between_renames)

    yield arrange
    for h in handles:
        h.remove()


@pytest.fixture(scope="module")
def full_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("full") / "run"
    torch.set_num_threads(1)  # as in every test (conftest), which runs after module fixtures
    fit(tiny_config(), make_texts(150, seed=3), run, progress=False)
    return run


PHASES = [
    ("step", STEPS_PER_EPOCH + 2),  # inside epoch 2
    ("validation", 2),
    ("best", 2),
    ("last", 2),
]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("phase, n", PHASES, ids=[p for p, _ in PHASES])
def test_a_signal_at_any_phase_resumes_exactly(
    full_run: Path, tmp_path: Path, deliver: Callable[[str, int, int], None], phase: str, n: int, signum: int
) -> None:
    data = make_texts(150, seed=3)
    cut = tmp_path / "cut"
    deliver(phase, n, signum)
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt) as stopped:
        fit(tiny_config(), data, cut, progress=False)
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before, "handlers restored"
    assert isinstance(stopped.value, TrainingInterrupted) and stopped.value.signum == signum
    assert f"stopped by {signal.Signals(signum).name}" in str(stopped.value) and "resume" in str(stopped.value)
    progress = torch.load(cut / "last" / "trainer_state.pt", weights_only=True)["progress"]
    if phase == "step":  # stopped right after that whole step
        assert progress["step"] == n and progress["batches_done"] == 2 and progress["epoch"] == 1
    else:  # stopped once epoch 2 was validated and saved
        assert progress["step"] == 2 * STEPS_PER_EPOCH and progress["epoch"] == 2 and progress["batches_done"] == 0
    resumed = fit(tiny_config(), data, cut, resume=True, progress=False)
    assert len(resumed.history) == 3
    assert_same_run(full_run, cut)


def test_a_signal_before_the_first_step_saves_a_run_that_resumes(
    full_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import classiformer.training as training

    real = training.encode

    def encode(*args: Any, **kwargs: Any) -> Any:
        kill_self(signal.SIGINT)  # while the texts are encoded, before any training
        monkeypatch.setattr(training, "encode", real)
        return real(*args, **kwargs)

    monkeypatch.setattr(training, "encode", encode)
    data, cut = make_texts(150, seed=3), tmp_path / "cut"
    with pytest.raises(TrainingInterrupted, match="stopped by SIGINT at epoch 1, step 0"):
        fit(tiny_config(), data, cut, progress=False)
    fit(tiny_config(), data, cut, resume=True, progress=False)
    assert_same_run(full_run, cut)


def test_a_second_signal_stops_at_once_and_keeps_the_last_safe_checkpoint(
    full_run: Path, tmp_path: Path, deliver: Callable[[str, int, int], None]
) -> None:
    """Users expect a second Ctrl-C to stop at once: it does, without saving, and last/ still holds
    the previous safe point (checkpoints are written atomically), from which resume is exact."""
    data, cut = make_texts(150, seed=3), tmp_path / "cut"
    deliver("validation", 2, signal.SIGINT)  # the first: stop after epoch 2's bookkeeping ...
    deliver("last", 2, signal.SIGINT)  # ... the second arrives while that epoch's last/ is renamed
    with pytest.raises(TrainingInterrupted) as stopped:
        fit(tiny_config(), data, cut, progress=False)
    assert "second SIGINT" in str(stopped.value)
    progress = torch.load(cut / "last" / "trainer_state.pt", weights_only=True)["progress"]
    assert progress["epoch"] == 1 and progress["step"] == STEPS_PER_EPOCH  # epoch 1's, intact
    fit(tiny_config(), data, cut, resume=True, progress=False)
    assert_same_run(full_run, cut)


def test_a_signal_during_the_ranks_exchange_stops_at_the_next_step(
    full_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In a process group the ranks exchange their stop requests after every step (an all-reduce,
    most of whose time is spent waiting for the peer), so that is where a scheduler's SIGTERM
    usually lands. The peers' answer, "nobody asked", must not erase the request noted meanwhile:
    it stops the run one step later (the launcher sends each rank the signal, so every rank then
    asks). Before the fix the run trained on to its end."""
    import classiformer.training as training

    calls = 0

    def agree_signal(signum: int | None) -> int | None:
        nonlocal calls
        calls += 1
        if calls == 5:  # the exchange after step 4: the signal arrives while it waits, the peers had none
            kill_self(signal.SIGTERM)
        return signum  # what the ranks agreed on: the requests as they were when the exchange began

    monkeypatch.setattr(training.distributed, "agree_signal", agree_signal)
    data, cut = make_texts(150, seed=3), tmp_path / "cut"
    with pytest.raises(TrainingInterrupted, match="stopped by SIGTERM at epoch 1, step 5"):
        fit(tiny_config(), data, cut, progress=False)
    monkeypatch.undo()
    fit(tiny_config(), data, cut, resume=True, progress=False)
    assert_same_run(full_run, cut)


def frozen_config(tiny_bert: Path, **train: Any):  # noqa: F811
    return config_for(tiny_bert, "frozen", epochs=4, **train)


@pytest.mark.parametrize("cache_mb", [1024, 0], ids=["memory", "memory-mapped"])
def test_frozen_encoder_resumes_exactly(
    tiny_bert: Path, tmp_path: Path, deliver: Callable[[str, int, int], None], cache_mb: int  # noqa: F811
) -> None:
    """The feature cache is rebuilt after a resume: the features must be the same floats."""
    data = make_texts(120, seed=1)  # 108 train rows: 7 steps per epoch

    def cfg():  # type: ignore[no-untyped-def]
        c = frozen_config(tiny_bert)
        c.model.feature_cache_mb = cache_mb
        return c

    fit(cfg(), data, tmp_path / "full", progress=False)
    deliver("step", 7 + 3, signal.SIGTERM)
    with pytest.raises(TrainingInterrupted):
        fit(cfg(), data, tmp_path / "cut", progress=False)
    fit(cfg(), data, tmp_path / "cut", resume=True, progress=False)
    assert_same_run(tmp_path / "full", tmp_path / "cut")
    assert read_meta(tmp_path / "cut" / "best").family == "hf"
