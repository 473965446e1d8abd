"""The training loop's callback hooks (training.Callback): what tracking and pruning rely on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from classiformer import fit, resolve_config
from classiformer.training import LOG_EVERY, Callback, Trainer, TrainResult

from .conftest import make_texts


def tiny_config(**train: Any):  # type: ignore[no-untyped-def]
    return resolve_config(
        "tiny",
        model={"embed_dim": 18, "num_heads": 3, "ff_dim": 23, "hidden_dim": 11, "dropout": 0.1},
        tokenizer={"vocab_size": 60, "max_length": 12},
        train={"epochs": 2, "batch_size": 4, "lr": 3e-2, "patience": 0, **train},
    )


class Recorder(Callback):
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def on_train_begin(self, trainer: Trainer) -> None:
        self.calls.append(("begin", trainer.state.step))

    def on_log(self, step: int, logs: dict[str, float]) -> None:
        self.calls.append(("log", (step, dict(logs))))

    def on_epoch_end(self, epoch: int, record: dict[str, Any]) -> None:
        self.calls.append(("epoch", (epoch, dict(record))))

    def on_train_end(self, result: TrainResult) -> None:
        self.calls.append(("end", result.best_epoch))


def test_callbacks_see_each_log_step_and_epoch_in_order(tmp_path: Path) -> None:
    # 160 training texts in batches of 4: 40 steps an epoch, so two logs of 80 texts each per epoch,
    # whose mean loss must be the epoch's training loss.
    rec = Recorder()
    result = fit(tiny_config(), make_texts(160, seed=1), tmp_path / "run", validation=make_texts(30, seed=2),
                 progress=False, callbacks=[rec])
    kinds = [k for k, _ in rec.calls]
    assert kinds == ["begin", "log", "log", "epoch", "log", "log", "epoch", "end"]
    assert rec.calls[0] == ("begin", 0)
    logs = [v for k, v in rec.calls if k == "log"]
    assert [step for step, _ in logs] == [LOG_EVERY, 2 * LOG_EVERY, 3 * LOG_EVERY, 4 * LOG_EVERY]
    epochs = [v for k, v in rec.calls if k == "epoch"]
    assert [e for e, _ in epochs] == [1, 2]
    assert [r for _, r in epochs] == result.history
    for i, (_, record) in enumerate(epochs):
        first, second = logs[2 * i][1], logs[2 * i + 1][1]
        assert (first["loss"] + second["loss"]) / 2 == pytest.approx(record["train_loss"], rel=1e-6)
        assert first["loss"] != second["loss"]  # each log covers its own steps, not the epoch so far
    assert logs[-1][1]["lr"] == pytest.approx(result.history[-1]["lr"])


def test_an_exception_in_on_epoch_end_stops_training_with_last_saved(tmp_path: Path) -> None:
    class Prune(Exception):
        pass

    class StopAfterFirst(Recorder):
        def on_epoch_end(self, epoch: int, record: dict[str, Any]) -> None:
            super().on_epoch_end(epoch, record)
            raise Prune

    rec = StopAfterFirst()
    with pytest.raises(Prune):
        fit(tiny_config(epochs=3), make_texts(160, seed=1), tmp_path / "run", validation=make_texts(30, seed=2),
            progress=False, callbacks=[rec])
    assert [k for k, _ in rec.calls] == ["begin", "log", "log", "epoch"]  # no on_train_end
    state = torch.load(tmp_path / "run" / "last" / "trainer_state.pt", weights_only=True)
    assert state["progress"]["epoch"] == 1  # last/ holds the end of the epoch: the run resumes from there
    resumed = fit(None, make_texts(160, seed=1), tmp_path / "run", validation=make_texts(30, seed=2), resume=True,
                  progress=False)
    assert [h["epoch"] for h in resumed.history] == [1, 2, 3]
