"""The lesson's vectorizer (Keras ``TextVectorization`` with its defaults).

Lowercase, strip punctuation, split on whitespace; the vocabulary is id 0 = padding, id 1 =
out-of-vocabulary, then the most frequent training words (ties broken by first appearance), so
``vocab_size`` counts the two reserved ids as Keras does. Unlike Keras, punctuation other than the
apostrophe becomes a space rather than vanishing, so "U.S.-led" gives "u s led", not "usled".
"""

from __future__ import annotations

import json
import string
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

PAD, OOV = "[PAD]", "[UNK]"
VOCAB_FILE = "vocab.json"

_PUNCT: dict[int, str | None] = {ord(c): " " for c in string.punctuation if c != "'"}
_PUNCT[ord("'")] = None
_PUNCT.update({ord(c): " " for c in "\u2018\u2019\u201c\u201d\u2013\u2014\u2026"})


def split_words(text: str, lowercase: bool = True) -> list[str]:
    return (text.lower() if lowercase else text).translate(_PUNCT).split()


class WordVectorizer:
    kind = "words"
    pad_id = 0
    oov_id = 1

    def __init__(self, vocab: list[str], max_length: int, lowercase: bool = True) -> None:
        if vocab[:2] != [PAD, OOV]:
            raise ValueError(f"vocabulary must start with {PAD!r}, {OOV!r}")
        self.vocab = vocab
        self.max_length = max_length
        self.lowercase = lowercase
        self.index = {w: i for i, w in enumerate(vocab)}

    @classmethod
    def fit(
        cls, texts: list[str], vocab_size: int, max_length: int, min_frequency: int = 1, lowercase: bool = True
    ) -> WordVectorizer:
        counts: Counter[str] = Counter()
        for t in texts:
            counts.update(split_words(t, lowercase))
        words = [w for w, c in counts.most_common(vocab_size - 2) if c >= min_frequency]
        return cls([PAD, OOV, *words], max_length, lowercase)

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def encode(self, texts: list[str]) -> list[np.ndarray]:
        get, oov, n = self.index.get, self.oov_id, self.max_length
        out = []
        for t in texts:
            ids = [get(w, oov) for w in split_words(t, self.lowercase)[:n]]
            out.append(np.array(ids or [oov], dtype=np.int64))  # an empty text still gets one position
        return out

    def tokens(self, text: str) -> list[str]:
        return split_words(text, self.lowercase)[: self.max_length] or [OOV]

    def to_config(self) -> dict[str, Any]:
        return {"kind": self.kind, "max_length": self.max_length, "lowercase": self.lowercase}

    def save(self, folder: Path) -> None:
        (folder / VOCAB_FILE).write_text(json.dumps(self.vocab, ensure_ascii=False), encoding="utf-8")

    @classmethod
    def load(cls, folder: Path, config: dict[str, Any]) -> WordVectorizer:
        vocab = json.loads((folder / VOCAB_FILE).read_text(encoding="utf-8"))
        return cls(vocab, int(config["max_length"]), bool(config.get("lowercase", True)))
