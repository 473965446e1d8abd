"""Pooled features of a frozen encoder, computed at most once per example and run.

With the encoder fixed, an example's pooled features never change, so frozen-mode training computes
them on the first epoch and every later epoch (training and validation) costs only the head. Rows
live in memory, or, for sets whose features would not fit comfortably, in a memory-mapped ``.npy``
file that is deleted with the cache. Each row remembers its token count, so a lookup whose
lengths disagree (example indices that changed meaning) fails loudly rather than returning another
example's features.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch


class FeatureCache:
    def __init__(self, dim: int, size: int = 0, path: Path | None = None) -> None:
        """``size`` rows of width ``dim``; in ``path`` (a memory-mapped file) when given, else in
        memory, where the cache also grows on demand."""
        self.dim = dim
        self.path = path
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            rows = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(size, dim))
            self.feats = torch.from_numpy(rows)
        else:
            self.feats = torch.zeros(size, dim)
        self.lens = torch.full((size,), -1, dtype=torch.long)  # token count per row; -1: not computed

    def __len__(self) -> int:
        return len(self.lens)

    def _grow(self, n: int) -> None:
        if self.path is not None:
            raise IndexError(f"example index {n - 1} is outside the feature cache of {len(self)} rows ({self.path})")
        size = max(n, 2 * len(self))
        feats, lens = torch.zeros(size, self.dim), torch.full((size,), -1, dtype=torch.long)
        feats[: len(self)], lens[: len(self)] = self.feats, self.lens
        self.feats, self.lens = feats, lens

    def lookup(
        self, index: torch.Tensor, lens: torch.Tensor, compute: Callable[[torch.Tensor], torch.Tensor]
    ) -> torch.Tensor:
        """Features (B, dim) of examples ``index`` (B,) whose token counts are ``lens`` (B,).
        ``compute(todo)`` returns the features of the batch rows selected by the bool mask ``todo``."""
        index, lens = index.cpu(), lens.cpu()
        n = int(index.max()) + 1
        if n > len(self):
            self._grow(n)
        todo = self.lens[index] < 0
        if bool(todo.any()):
            self.feats[index[todo]] = compute(todo).detach().float().cpu()
            self.lens[index[todo]] = lens[todo]
        if not torch.equal(self.lens[index], lens):
            raise RuntimeError("feature cache mismatch: example indices changed meaning; clear the cache")
        return self.feats[index]

    def computed(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The rows computed so far: (indices (K,), features (K, dim), token counts (K,))."""
        index = torch.nonzero(self.lens >= 0).squeeze(1)
        return index, self.feats[index].clone(), self.lens[index].clone()

    def put(self, index: torch.Tensor, feats: torch.Tensor, lens: torch.Tensor) -> None:
        """Store rows another process computed (:meth:`computed` there): a cache filled in
        parallel by the ranks of a process group, each computing a share."""
        if len(index) and int(index.max()) + 1 > len(self):
            self._grow(int(index.max()) + 1)
        self.feats[index] = feats
        self.lens[index] = lens

    def close(self) -> None:
        """Free the rows; a memory-mapped file is deleted."""
        self.feats = torch.zeros(0, self.dim)
        self.lens = torch.zeros(0, dtype=torch.long)
        if self.path is not None:
            self.path.unlink(missing_ok=True)
