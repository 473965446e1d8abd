"""Texts that occur both in the data a model learns from and in the data it is measured on.

A test or validation example that is also a training example measures memory, not generalisation,
and inflates the figure; benchmark sets and scraped data hold many such duplicates (Lewis et al.,
2021, "Question and Answer Test-Train Overlap in Open-Domain Question Answering Datasets";
Elangovan et al., 2021, "Memorization vs. Generalization: Quantifying Data Leakage in NLP
Performance Evaluation"). The check here is the cheap one that catches most of it: exact matches
after folding case and whitespace, by hash, in one pass. It reports; it removes nothing, because
whether a duplicate is a leak (the same review posted twice) or legitimate (a short query many users
type) is the user's call.

Near-duplicates are not caught: SST-2's training set holds every phrase of each sentence, so a random
split of it leaks through sub-phrases that no exact match sees (docs/benchmarks.md, "Hyperparameter
search"); there the remedy is a validation set of whole held-out items (``--validation FILE``).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass

from .datasets import TextDataset

log = logging.getLogger(__name__)

EXAMPLES = 3  # line numbers quoted in the warning


def _key(text: str) -> bytes:
    return hashlib.blake2b(" ".join(text.lower().split()).encode(), digest_size=12).digest()


@dataclass(frozen=True)
class Overlap:
    """How many of ``total`` texts of ``source`` also occur in the training texts."""

    source: str
    shared: int
    total: int
    lines: tuple[int, ...]  # where the first few shared texts are in ``source``

    @property
    def fraction(self) -> float:
        return self.shared / self.total if self.total else 0.0

    def note(self, what: str) -> str | None:
        """A warning line naming the overlap and what to do about it, or None when there is none."""
        if not self.shared:
            return None
        where = ", ".join(str(n) for n in self.lines)
        return (f"{what} ({self.source}): {self.shared:,} of {self.total:,} texts ({self.fraction:.1%}) also occur in "
                f"the training data (case and spacing ignored; first at line {where}), so its metrics partly measure "
                "memory: remove the duplicates from one side, or give a validation/test file with none")


def overlap(train: Iterable[str], other: TextDataset) -> Overlap:
    """Count the texts of ``other`` that occur in ``train``."""
    keys = {_key(t) for t in train}
    shared = [i for i, text in enumerate(other.texts) if _key(text) in keys]
    lines = tuple((other.lines[i] if other.lines else i + 1) for i in shared[:EXAMPLES])
    return Overlap(other.source, len(shared), len(other.texts), lines)


def warn_overlap(train: Iterable[str], other: TextDataset, what: str) -> Overlap:
    """:func:`overlap`, with its :meth:`Overlap.note` logged as a warning when there is one."""
    found = overlap(train, other)
    note = found.note(what)
    if note:
        log.warning(note)
    return found
