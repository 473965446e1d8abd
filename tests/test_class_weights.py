"""--class-weight in training: the weights reach the loss and are recorded in the checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from classiformer import fit, resolve_config
from classiformer.checkpoint import read_meta
from classiformer.data import TextDataset

from .conftest import make_texts


def imbalanced(n: int = 200) -> TextDataset:
    """The toy topics kept at 100%, 30% and 10%."""
    ds = make_texts(n, seed=1)
    keep = {"money": 1.0, "sports": 0.3, "tech": 0.1}
    seen: dict[str, int] = {}
    idx = []
    for i, y in enumerate(ds.labels or []):
        seen[y] = seen.get(y, 0) + 1
        if seen[y] <= keep[y] * n / 3:
            idx.append(i)
    return ds.subset(idx)


def config(**train):
    return resolve_config(
        "tiny", model={"embed_dim": 18, "num_heads": 3, "ff_dim": 23, "hidden_dim": 11, "dropout": 0.0},
        tokenizer={"vocab_size": 60, "max_length": 12},
        train={"epochs": 1, "batch_size": 16, "lr": 3e-2, "patience": 0, **train},
    )


def test_balanced_weights_reach_the_loss_and_the_checkpoint(tmp_path: Path) -> None:
    data = imbalanced()
    counts = {y: (data.labels or []).count(y) for y in ("money", "sports", "tech")}
    plain = fit(config(), data, tmp_path / "plain", progress=False)
    weighted = fit(config(class_weight="balanced"), data, tmp_path / "balanced", progress=False)
    stored = read_meta(weighted.best_dir).extra["class_weights"]
    train_counts = {y: c - round(c * 0.1) for y, c in counts.items()}  # the stratified 10% held out
    n = sum(train_counts.values())
    assert stored == pytest.approx({y: n / (3 * c) for y, c in train_counts.items()})
    assert "class_weights" not in read_meta(plain.best_dir).extra
    # Same seed, same batches: only the weights differ, and they change the training loss.
    assert weighted.history[0]["train_loss"] != plain.history[0]["train_loss"]


def test_weights_from_a_file_and_bad_files(tmp_path: Path) -> None:
    data = imbalanced()
    f = tmp_path / "weights.json"
    f.write_text(json.dumps({"tech": 4.0}))
    result = fit(config(class_weight=str(f)), data, tmp_path / "file", progress=False)
    assert read_meta(result.best_dir).extra["class_weights"] == {"money": 1.0, "sports": 1.0, "tech": 4.0}
    f.write_text(json.dumps({"tehc": 4.0}))
    with pytest.raises(ValueError, match=r"weights.json: unknown label\(s\) \['tehc'\]"):
        fit(config(class_weight=str(f)), data, tmp_path / "bad", progress=False)
    # Refused before anything of a run was written (the folder holds at most the run lock).
    assert not list((tmp_path / "bad").glob("[!.]*"))
