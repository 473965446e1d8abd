"""Synthetic variants of training texts for distillation's transfer set.

The rules of Tang et al., 2019 ("Distilling Task-Specific Knowledge from BERT into Simple Neural
Networks", section 3.3), applied to whitespace-separated words (each character of a script
written without spaces, Chinese or Thai, counting as one: ``scripts.spaced``):

- masking: each word, with probability ``p_mask``, becomes ``[MASK]`` (BERT's mask token, which a
  BERT teacher reads as such; the student learns it as one more word, "something was here");
- word replacement: else, with probability ``p_replace``, a word becomes another word of the
  training texts. Tang et al. draw one of the same part of speech, which needs a tagger and its
  downloaded model; here the candidates are the words seen between the same two neighbours
  (the previous and next word, lowercased) somewhere in the texts, a distributional stand-in that
  needs nothing but the texts themselves. A word whose context occurs nowhere else stays;
- n-gram sampling: then, with probability ``p_ngram``, the variant is cut to a random n-gram of
  it, n drawn uniformly from 1 to ``max_ngram`` (5 in the paper).

Each text gets up to ``n`` distinct variants that differ from it (duplicates are drawn again, a
bounded number of times). Every text's variants come from its own generator, seeded by
``(seed, index)``: the same texts and seed give the same variants, whatever else is in the set.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .scripts import spaced

MASK = "[MASK]"
BOUNDARY = "\x00"  # the neighbour of a text's first and last word


@dataclass
class Augmenter:
    """Draws variants of texts; see the module docstring. Defaults are Tang et al.'s (p_mask =
    p_pos = 0.1, p_ng = 0.25, n-grams of 1 to 5 words)."""

    p_mask: float = 0.1
    p_replace: float = 0.1
    p_ngram: float = 0.25
    max_ngram: int = 5
    mask: str = MASK
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("p_mask", "p_replace", "p_ngram"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} is a probability in [0, 1], got {value}")
        if self.p_mask + self.p_replace > 1.0:
            raise ValueError(f"p_mask + p_replace must be at most 1, got {self.p_mask + self.p_replace}")
        if self.max_ngram < 1:
            raise ValueError(f"max_ngram must be at least 1, got {self.max_ngram}")
        self._contexts: dict[tuple[str, str], list[str]] | None = None  # set by fit

    def fit(self, texts: Sequence[str]) -> Augmenter:
        """Learn the replacement candidates: for each (previous, next) pair of words, the words seen
        between them (distinct, in order of first appearance, so the draws do not depend on hashing)."""
        seen: dict[tuple[str, str], dict[str, None]] = defaultdict(dict)
        for text in texts:
            words = spaced(text).split()
            keys = [w.lower() for w in words]
            for i, word in enumerate(words):
                prev = keys[i - 1] if i else BOUNDARY
                nxt = keys[i + 1] if i + 1 < len(keys) else BOUNDARY
                seen[(prev, nxt)][word] = None
        self._contexts = {k: list(v) for k, v in seen.items() if len(v) > 1}
        return self

    def variant(self, words: list[str], rng: np.random.Generator) -> list[str]:
        """One variant of a text's ``words``."""
        keys = [w.lower() for w in words]
        out = []
        draws = rng.random(len(words))
        for i, (word, x) in enumerate(zip(words, draws)):
            if x < self.p_mask:
                out.append(self.mask)
            elif x < self.p_mask + self.p_replace:
                prev = keys[i - 1] if i else BOUNDARY
                nxt = keys[i + 1] if i + 1 < len(keys) else BOUNDARY
                candidates = (self._contexts or {}).get((prev, nxt))
                out.append(candidates[int(rng.integers(len(candidates)))] if candidates else word)
            else:
                out.append(word)
        if len(out) > 1 and rng.random() < self.p_ngram:
            n = min(len(out), int(rng.integers(1, self.max_ngram + 1)))
            start = int(rng.integers(len(out) - n + 1))
            out = out[start : start + n]
        return out

    def variants(self, text: str, n: int, index: int) -> list[str]:
        """Up to ``n`` distinct variants of ``text`` (the ``index``-th text of its set), none equal
        to it; fewer when the text has too few words to vary that often."""
        words = spaced(text).split()  # a character of Chinese, Japanese or Thai is a word here
        if not words or n <= 0:
            return []
        rng = np.random.default_rng([self.seed, index])
        found: dict[str, None] = {}
        whole = " ".join(words)
        for _ in range(4 * n):  # bounded: a one-word text has few variants
            v = " ".join(self.variant(words, rng))
            if v and v != whole:
                found[v] = None
                if len(found) == n:
                    break
        return list(found)

    def augment(self, texts: Sequence[str], n: int) -> tuple[list[str], list[int]]:
        """``n`` variants per text of ``texts``: the variants, and for each the index of the text
        it came from. Fit on ``texts`` first if :meth:`fit` was not called."""
        if self._contexts is None:
            self.fit(texts)
        out: list[str] = []
        source: list[int] = []
        for i, text in enumerate(texts):
            vs = self.variants(text, n, i)
            out.extend(vs)
            source.extend([i] * len(vs))
        return out, source
