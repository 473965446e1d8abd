"""The lesson's vectorizer (Keras ``TextVectorization`` with its defaults), for text in any script.

Lowercase, strip punctuation, split on whitespace; the vocabulary is id 0 = padding, id 1 =
out-of-vocabulary, then the most frequent training words (ties broken by first appearance), so
``vocab_size`` counts the two reserved ids as Keras does. Unlike Keras, punctuation other than the
apostrophe becomes a space rather than vanishing, so "U.S.-led" gives "u s led", not "usled".

Beyond ASCII (``split="unicode"``, what every new vocabulary uses), as BERT's basic tokenizer does
(Devlin et al., 2019; ``BasicTokenizer`` in google-research/bert): text is NFKC-normalised
(full-width letters and digits become ASCII), every Unicode punctuation mark is a space, symbols
(emoji, currency signs) are words of their own, and each character of a script written without
spaces between words (Chinese, Japanese, Thai, Lao, Khmer, Myanmar) is a word. Without the last,
a Chinese review was one "word" per clause, a vocabulary of sentences seen once, and the ``base``
preset scored below the majority class (48% on Chinese product reviews against character TF-IDF's
86%; docs/benchmarks.md). With it, the n-gram branch's word pairs are character bigrams, the usual
strong features for such text. Vocabularies saved before this (no ``split`` in their config) keep
the ASCII-only rules (``split="ascii"``), so their models predict as they were trained.
"""

from __future__ import annotations

import json
import string
import unicodedata
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from ..data.scripts import unspaced

PAD, OOV = "[PAD]", "[UNK]"
VOCAB_FILE = "vocab.json"
SPLITS = ("unicode", "ascii")

_PUNCT: dict[int, str | None] = {ord(c): " " for c in string.punctuation if c != "'"}
_PUNCT[ord("'")] = None
_PUNCT.update({ord(c): " " for c in "\u2018\u2019\u201c\u201d\u2013\u2014\u2026"})


class _UnicodeTable(dict[int, "str | None"]):
    """``str.translate``'s table for ``split="unicode"``: ASCII as the lesson's rules, any other
    character looked up once (by its Unicode category) and remembered."""

    def __missing__(self, code: int) -> str | None:
        ch = chr(code)
        category = unicodedata.category(ch)
        value: str | None
        if code == 0x2019:  # the typographic apostrophe, as "'": "don\u2019t" is "dont" like "don't"
            value = None
        elif 0xFE00 <= code <= 0xFE0F or 0xE0100 <= code <= 0xE01EF:
            value = None  # variation selectors: "\u2764\ufe0f" (emoji style) is the word "\u2764" as well
        elif unspaced(code) or category[0] == "S":  # a word of its own
            value = f" {ch} "
        elif category[0] == "P" or category in ("Cc", "Cf", "Zs", "Zl", "Zp"):
            value = " "  # punctuation, controls, zero-width and other spaces (Thai marks words with U+200B)
        else:
            value = ch
        self[code] = value
        return value


_UNICODE = _UnicodeTable(_PUNCT)
del _UNICODE[0x2019]  # looked up as above, not as the ASCII-only rules' space


def split_words(text: str, lowercase: bool = True, split: str = "unicode") -> list[str]:
    """The words of ``text`` as the vectorizer sees them (see the module docstring)."""
    if split == "ascii" or text.isascii():
        return (text.lower() if lowercase else text).translate(_PUNCT).split()
    # the acute accent typed as an apostrophe ("don\u00b4t") is one: NFKC would make it a space and a mark
    text = unicodedata.normalize("NFKC", text.replace("\u00b4", "'"))  # before lowering: NFKC can give capitals ("\u210c": "H")
    return (text.lower() if lowercase else text).translate(_UNICODE).split()


class WordVectorizer:
    kind = "words"
    pad_id = 0
    oov_id = 1

    def __init__(self, vocab: list[str], max_length: int, lowercase: bool = True, split: str = "unicode") -> None:
        if vocab[:2] != [PAD, OOV]:
            raise ValueError(f"vocabulary must start with {PAD!r}, {OOV!r}")
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        self.vocab = vocab
        self.max_length = max_length
        self.lowercase = lowercase
        self.split = split
        self.index = {w: i for i, w in enumerate(vocab)}

    def words(self, text: str) -> list[str]:
        return split_words(text, self.lowercase, self.split)

    @classmethod
    def fit(
        cls, texts: list[str], vocab_size: int, max_length: int, min_frequency: int = 1, lowercase: bool = True
    ) -> WordVectorizer:
        counts: Counter[str] = Counter()
        for t in texts:
            counts.update(split_words(t, lowercase))  # new vocabularies split by the Unicode rules
        words = [w for w, c in counts.most_common(vocab_size - 2) if c >= min_frequency]
        return cls([PAD, OOV, *words], max_length, lowercase)

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def encode(self, texts: list[str]) -> list[np.ndarray]:
        get, oov, n, words = self.index.get, self.oov_id, self.max_length, self.words
        out = []
        for t in texts:
            ids = [get(w, oov) for w in words(t)[:n]]
            out.append(np.array(ids or [oov], dtype=np.int64))  # an empty text still gets one position
        return out

    def tokens(self, text: str) -> list[str]:
        return self.words(text)[: self.max_length] or [OOV]

    def to_config(self) -> dict[str, Any]:
        return {"kind": self.kind, "max_length": self.max_length, "lowercase": self.lowercase, "split": self.split}

    def save(self, folder: Path) -> None:
        (folder / VOCAB_FILE).write_text(json.dumps(self.vocab, ensure_ascii=False), encoding="utf-8")

    @classmethod
    def load(cls, folder: Path, config: dict[str, Any]) -> WordVectorizer:
        vocab = json.loads((folder / VOCAB_FILE).read_text(encoding="utf-8"))
        # a vocabulary saved before the Unicode rules has no "split": it keeps the rules it was built with
        return cls(vocab, int(config["max_length"]), bool(config.get("lowercase", True)), config.get("split", "ascii"))
