"""Dynamic padding with length-bucketed batches.

Batches are padded only to their longest member, and members are grouped by length so that
little padding is needed. Training order is a pure function of (seed, epoch), which makes a
resumed run replay exactly the batches an uninterrupted run would have seen.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch


@dataclass
class EncodedDataset:
    """Token ids per example (variable length) and optional label ids."""

    ids: list[np.ndarray]
    labels: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def lengths(self) -> np.ndarray:
        return np.fromiter((len(x) for x in self.ids), dtype=np.int64, count=len(self.ids))


def bucketed_batches(
    lengths: np.ndarray, batch_size: int, seed: int, epoch: int | Sequence[int], bucket_factor: int = 50,
    group: int = 1,
) -> list[np.ndarray]:
    """Shuffled batches of similar-length examples.

    The indices are shuffled, cut into pools of ``batch_size * group * bucket_factor``, each pool is
    sorted by length and cut into batches, and the batches are shuffled again so that lengths vary
    from step to step. ``epoch`` may be several numbers (the streaming reader's pass, shard and
    window): the order is a pure function of ``seed`` and them.

    ``group`` > 1 is for that many processes that each take one batch of a step (positions ``k *
    group`` to ``k * group + group - 1``, :func:`classiformer.distributed.shard`): runs of ``group``
    neighbouring batches of a pool stay together through the second shuffle, so the batches of a
    step have similar lengths and no process waits long for a slower one (with independently drawn
    lengths, 2 processes lost about 17% of their time waiting on IMDB). A step then takes the
    examples one process would take in a batch of ``batch_size * group``: the order is the same
    (one run that has fewer than ``group`` batches, the last pool's, comes last).
    """
    rng = np.random.default_rng([seed, *([epoch] if isinstance(epoch, int) else epoch)])
    order = rng.permutation(len(lengths))
    pool = batch_size * group * bucket_factor
    runs: list[list[np.ndarray]] = []
    for start in range(0, len(order), pool):
        chunk = order[start : start + pool]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches = [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
        runs.extend(batches[i : i + group] for i in range(0, len(batches), group))
    perm = rng.permutation(len(runs))
    if group > 1:  # a short run would put every later step's batches out of step with the processes
        perm = np.concatenate([perm[[len(runs[i]) == group for i in perm]], perm[[len(runs[i]) < group for i in perm]]])
    return [batch for i in perm for batch in runs[i]]


def sorted_batches(lengths: np.ndarray, batch_size: int, max_tokens: int | None = None) -> list[np.ndarray]:
    """Inference batches in order of decreasing length (callers restore the original order). With
    ``max_tokens``, a batch also holds at most that many padded tokens (its first, longest member's
    length times its size; never fewer than one example)."""
    order = np.argsort(-lengths, kind="stable")
    if not max_tokens:
        return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    batches, i = [], 0
    while i < len(order):
        width = max(1, int(lengths[order[i]]))
        size = max(1, min(batch_size, max_tokens // width))
        batches.append(order[i : i + size])
        i += size
    return batches


def pad(ids: Sequence[np.ndarray], pad_id: int, width: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``input_ids`` and ``attention_mask`` (B, T) int64 of ``ids`` padded to the longest one (or to
    ``width``, if larger), as NumPy arrays: what ONNX Runtime takes, without PyTorch."""
    lengths = np.fromiter((len(x) for x in ids), dtype=np.int64, count=len(ids))
    longest = max(1, width, int(lengths.max(initial=0)))
    mask = (np.arange(longest) < lengths[:, None]).astype(np.int64)  # (B, T)
    input_ids = np.full((len(ids), longest), pad_id, dtype=np.int64)
    if len(ids):
        input_ids[mask.astype(bool)] = np.concatenate(ids)  # row-major: each row's tokens, left-aligned
    return input_ids, mask


def collate(
    ids: Sequence[np.ndarray], pad_id: int, labels: np.ndarray | None = None, index: np.ndarray | None = None,
    width: int = 0,
) -> dict[str, torch.Tensor]:
    """Pad ``ids`` to the longest one (or to ``width``, if larger): ``input_ids`` and
    ``attention_mask`` are (B, T)."""
    import torch

    input_ids, mask = pad(ids, pad_id, width)
    batch = {"input_ids": torch.from_numpy(input_ids), "attention_mask": torch.from_numpy(mask)}
    if labels is not None:
        batch["labels"] = torch.as_tensor(labels, dtype=torch.long)
    if index is not None:
        batch["index"] = torch.as_tensor(index, dtype=torch.long)
    return batch


def batch_of(
    data: EncodedDataset, idx: np.ndarray, pad_id: int, multiple: int = 1, limit: int = 0
) -> dict[str, torch.Tensor]:
    """Collate the examples ``idx`` of ``data``; ``index`` lets models cache per-example work.
    With ``multiple`` > 1 the batch length is rounded up to a multiple of it, but not beyond
    ``limit`` (the longest example of the set, hence within the model's position limit)."""
    ids = [data.ids[i] for i in idx]
    width = 0
    if multiple > 1:
        longest = max(len(x) for x in ids)
        width = min(-(-longest // multiple) * multiple, max(limit, longest))
    return collate(ids, pad_id, None if data.labels is None else data.labels[idx], index=idx, width=width)
