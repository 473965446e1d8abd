"""Batched inference shared by validation, evaluation, prediction and serving.

Batches are sorted by length (so padding is minimal) and results are put back in input order.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import numpy as np
from tqdm.auto import tqdm

if TYPE_CHECKING:
    import torch
    from torch import nn

from .data.batching import EncodedDataset, batch_of, sorted_batches
from .runtime import autocast, pad_multiple


def batch_tokens(model: nn.Module, device: torch.device | str) -> int | None:
    """The most padded tokens one inference batch of ``model`` may hold on ``device``, or None for no
    limit beyond the batch size. On a CPU a pretrained encoder runs much faster in batches whose
    activations stay in cache: MiniLM on 768 AG News texts, fp32, 1 thread on a 2-core AMD EPYC
    (AVX2): 18 docs/s in batches of 256 texts, 38 in batches of 32 (docs/benchmarks.md, "Inference
    speed"). The from-scratch families cap theirs too (8,192 tokens), for a different reason: a
    length-sorted batch of long texts is padded to its longest member, and attention's cost grows
    with the square of that length (IMDB reviews: 2.9x the docs/s; models/transformer.py). A GPU
    wants large batches and is not limited."""
    import torch

    if torch.device(device).type != "cpu":
        return None
    return getattr(model, "cpu_batch_tokens", None)


def logits_for(
    model: nn.Module,
    data: EncodedDataset,
    pad_id: int,
    batch_size: int = 256,
    device: torch.device | str = "cpu",
    progress: bool = False,
    desc: str = "predict",
    dtype: torch.dtype | None = None,
    cache_key: str | None = None,
    part: tuple[int, int] = (0, 1),
) -> np.ndarray:
    """Logits (N, C) for every example of ``data``, in input order, float32 (computed under
    autocast to ``dtype`` when given). ``cache_key`` names ``data`` for models that cache
    per-example work (a frozen encoder's features): batches then carry example indices.

    With ``part`` (rank, world) other than (0, 1), only every world-th batch from the rank-th is
    computed and the other rows are NaN (none at all: an (N, 0) array): the ranks of a process
    group compute disjoint parts of the same batches a single process would, and
    ``distributed.gather_rows`` joins them into exactly the single process's logits."""
    import torch

    was_training = model.training
    model.eval()
    out: np.ndarray | None = None
    try:
        with torch.inference_mode(), autocast(device, dtype):
            lengths = data.lengths
            batches = sorted_batches(lengths, batch_size, batch_tokens(model, device))
            batches = batches[part[0] :: part[1]]
            multiple, limit = pad_multiple(device), int(lengths.max(initial=0))
            for idx in tqdm(batches, desc=desc, unit="batch", disable=not progress, leave=False):
                batch = batch_of(EncodedDataset(data.ids), idx, pad_id, multiple, limit)
                extra = {"index": batch["index"], "cache_key": cache_key} if cache_key else {}
                logits = model(
                    input_ids=batch["input_ids"].to(device),
                    attention_mask=batch["attention_mask"].to(device),
                    **extra,
                ).logits
                chunk = logits.float().cpu().numpy()
                if out is None:
                    shape = (len(data), chunk.shape[1])
                    out = np.empty(shape, np.float32) if part[1] == 1 else np.full(shape, np.nan, np.float32)
                out[idx] = chunk
    finally:
        model.train(was_training)
    if out is None and part[1] > 1 and len(data):
        return np.empty((len(data), 0), dtype=np.float32)  # this rank's part holds no batch
    if out is None:
        raise ValueError("no examples to predict")
    return out


class Runner(Protocol):
    """What ``Classifier`` runs a model through: :class:`TorchRunner` for a PyTorch checkpoint,
    ``export.runtime.OnnxRunner`` for an exported ONNX model. Both batch the same way
    (``sorted_batches``) and return float32 logits (N, C) in input order."""

    def logits(self, data: EncodedDataset, batch_size: int, progress: bool = False) -> np.ndarray: ...


class TorchRunner:
    """A PyTorch model behind the :class:`Runner` contract: :func:`logits_for` with its settings."""

    def __init__(self, model: nn.Module, pad_id: int, device: torch.device | str = "cpu") -> None:
        import torch

        self.model, self.pad_id, self.device = model, pad_id, torch.device(device)

    def logits(self, data: EncodedDataset, batch_size: int, progress: bool = False,
               part: tuple[int, int] = (0, 1)) -> np.ndarray:
        return logits_for(self.model, data, self.pad_id, batch_size, self.device, progress, part=part)


def mean_by_owner(logits: np.ndarray, owner: np.ndarray, n: int) -> np.ndarray:
    """Average the rows of ``logits`` (M, C) that belong to the same owner: (n, C). Used to turn
    per-window logits of long texts into per-text logits."""
    sums = np.zeros((n, logits.shape[1]), dtype=np.float64)
    np.add.at(sums, owner, logits)
    counts = np.bincount(owner, minlength=n).astype(np.float64)
    return (sums / np.maximum(counts, 1.0)[:, None]).astype(np.float32)


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = logits / temperature
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def sigmoid(logits: np.ndarray, temperatures: np.ndarray | float = 1.0) -> np.ndarray:
    """``sigmoid(logits / T)`` (float64) with one temperature per label column, or one for all:
    the independent label probabilities of a multi-label model."""
    z = np.asarray(logits, dtype=np.float64) / np.asarray(temperatures, dtype=np.float64)
    # exp of a large positive number overflows (with a warning) though the result is 0 or 1 anyway.
    return np.exp(-np.logaddexp(0.0, -z))
