"""The ``--device cuda`` path: training, bf16 and fp16 autocast, checkpoints that move between GPU and CPU,
and the command line. Skipped where no CUDA GPU is present (CI); run on a GPU machine with
``pytest tests/test_cuda.py``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from classiformer import Classifier, fit
from classiformer.cli import main

from .conftest import make_texts, write_jsonl
from .test_pretrained import accuracy, config_for, tiny_bert  # noqa: F401  (the fixture)
from .test_training import tiny_config

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def labels_of(clf: Classifier, texts: list[str]) -> np.ndarray:
    return np.array(clf.predict(texts))


@pytest.mark.parametrize("mode", ["frozen", "finetune"])
@pytest.mark.parametrize("half", [{}, {"bf16": True}, {"fp16": True}])
def test_pretrained_modes_train_on_the_gpu(tiny_bert: Path, tmp_path: Path, mode: str, half: dict[str, bool]) -> None:  # noqa: F811
    cfg = config_for(tiny_bert, mode, **half)
    result = fit(cfg, make_texts(240, seed=1), tmp_path / "run", device="cuda", progress=False)
    test = make_texts(60, seed=2)
    on_gpu = Classifier.load(result.best_dir, device="cuda")
    assert next(on_gpu.model.parameters()).device.type == "cuda"
    assert accuracy(on_gpu, test) >= (0.95 if mode == "finetune" else 0.8)
    # A checkpoint written from the GPU loads on a CPU and computes the same logits.
    on_cpu = Classifier.load(result.best_dir, device="cpu")
    np.testing.assert_allclose(on_gpu.logits(test.texts), on_cpu.logits(test.texts), atol=2e-4, rtol=2e-4)
    # bf16 and fp16 inference on the GPU agree with fp32 on (nearly) every label.
    for precision in ("bf16", "fp16"):
        halved = Classifier.load(result.best_dir, device="cuda", **{precision: True})
        assert next(halved.model.parameters()).dtype == halved.dtype
        assert np.mean(labels_of(halved, test.texts) == labels_of(on_cpu, test.texts)) >= 0.95, precision


def test_from_scratch_transformer_trains_on_the_gpu(tmp_path: Path) -> None:
    result = fit(tiny_config(epochs=12, bf16=True), make_texts(240, seed=1), tmp_path / "run", device="cuda", progress=False)
    clf = Classifier.load(result.best_dir, device="cuda")
    test = make_texts(60, seed=2)
    assert accuracy(clf, test) >= 0.9
    np.testing.assert_allclose(
        clf.logits(test.texts), Classifier.load(result.best_dir, device="cpu").logits(test.texts), atol=2e-4, rtol=2e-4
    )


def test_gpu_and_cpu_training_follow_the_same_loss_curve(tiny_bert: Path, tmp_path: Path) -> None:  # noqa: F811
    """Same seed, same data: fp32 training on the GPU tracks the CPU's to float tolerance (no dropout:
    the two devices draw different masks)."""
    data = make_texts(120, seed=1)
    cfg = config_for(tiny_bert, "finetune", epochs=2)
    cfg.model.dropout = 0.0
    runs = {d: fit(cfg, data, tmp_path / d, device=d, progress=False) for d in ("cpu", "cuda")}
    cpu, gpu = ([h["train_loss"] for h in runs[d].history] for d in ("cpu", "cuda"))
    np.testing.assert_allclose(gpu, cpu, rtol=1e-3)


def test_command_line_on_the_gpu(tiny_bert: Path, tmp_path: Path, capsys) -> None:  # noqa: F811
    import json

    train, test = write_jsonl(tmp_path / "train.jsonl", 150, 1), write_jsonl(tmp_path / "test.jsonl", 30, 2)
    run = tmp_path / "run"
    assert main(["train", "--model", str(tiny_bert), "--mode", "finetune", "--train", str(train), "--test", str(test),
                 "--output", str(run), "--epochs", "3", "--lr", "3e-3", "--batch-size", "16", "--max-length", "20",
                 "--device", "cuda", "--bf16", "--no-progress"]) == 0
    assert main(["evaluate", str(run), "--test", str(test), "--long-text", "chunks", "--device", "cuda", "--bf16",
                 "--no-progress"]) == 0
    assert main(["predict", str(run), "goal goal team", "--device", "cuda", "--fp16"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["label"] == "sports"
