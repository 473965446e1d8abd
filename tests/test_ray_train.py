"""Ray Train runs the same training function on its workers: a local Ray cluster with 2 CPU
workers (``ray.train.torch.TorchTrainer``, ``ScalingConfig(num_workers=2)``, gloo)."""

from __future__ import annotations

import json
from pathlib import Path

import ray

from classiformer.checkpoint import load_checkpoint
from classiformer.cluster import ray_train
from classiformer.config import resolve_config

from .conftest import make_texts


def test_ray_train_on_two_cpu_workers_trains_one_run(tmp_path: Path) -> None:
    config = resolve_config("tiny", train={"batch_size": 16, "epochs": 4, "lr": 0.02})
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        result = ray_train(config, make_texts(300, seed=1), tmp_path / "run", num_workers=2,
                           validation=make_texts(90, seed=2))
    finally:
        ray.shutdown()
    history = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert result.history == history  # rank 0's result, and rank 0's file
    assert {h["world_size"] for h in history} == {2}  # both workers trained it, in one process group
    assert result.best_val_accuracy >= 0.9
    _, _, meta = load_checkpoint(tmp_path / "run" / "best")
    assert meta.labels == ["money", "sports", "tech"] and meta.temperature != 1.0  # calibrated at the end
