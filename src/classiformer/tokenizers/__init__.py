"""Tokenizers for from-scratch models: the lesson's word vectorizer and a trained WordPiece.

Both map a batch of texts to variable-length id arrays (padding happens at batching time), both
reserve id 0 for padding and id 1 for out-of-vocabulary, and both save to and load from a folder.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ..config import TokenizerConfig
from .hf import HFTokenizer
from .subword import WordPieceTokenizer
from .words import WordVectorizer


class Tokenizer(Protocol):
    """What training, prediction and explanation need from a tokenizer."""

    kind: str
    pad_id: int
    max_length: int

    @property
    def vocab_size(self) -> int: ...

    def encode(self, texts: list[str]) -> list[np.ndarray]: ...

    def tokens(self, text: str) -> list[str]: ...

    def save(self, folder: Path) -> None: ...

    def to_config(self) -> dict[str, Any]: ...


TOKENIZER_FILE = "tokenizer_config.json"


def train_tokenizer(config: TokenizerConfig, texts: list[str]) -> Tokenizer:
    """Fit the tokenizer that ``config`` describes on training ``texts``."""
    if config.kind == "hf":
        raise ValueError("a pretrained (hf) tokenizer is loaded with its model, not trained")
    if config.kind == "words":
        return WordVectorizer.fit(texts, config.vocab_size, config.max_length, config.min_frequency, config.lowercase)
    return WordPieceTokenizer.fit(texts, config.vocab_size, config.max_length, config.min_frequency, config.lowercase)


def save_tokenizer(tokenizer: Tokenizer, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / TOKENIZER_FILE).write_text(json.dumps(tokenizer.to_config(), indent=2), encoding="utf-8")
    tokenizer.save(folder)


def load_tokenizer(folder: Path, hf_backend: str = "transformers") -> Tokenizer:
    """The tokenizer saved in ``folder``. ``hf_backend`` (a pretrained encoder's tokenizer):
    ``transformers``, or ``tokenizers`` for the Rust tokenizer alone (``hf.RustTokenizer``)."""
    cfg_path = folder / TOKENIZER_FILE
    if not cfg_path.exists():
        raise FileNotFoundError(f"{folder}: no {TOKENIZER_FILE}; not a classiformer tokenizer folder")
    cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    kind = cfg.get("kind")
    if kind == "words":
        return WordVectorizer.load(folder, cfg)
    if kind == "wordpiece":
        return WordPieceTokenizer.load(folder, cfg)
    if kind == "hf":
        return HFTokenizer.load(folder, cfg, hf_backend)
    raise ValueError(f"{cfg_path}: unknown tokenizer kind {kind!r}")


__all__ = ["HFTokenizer", "Tokenizer", "WordPieceTokenizer", "WordVectorizer", "load_tokenizer", "save_tokenizer", "train_tokenizer"]
