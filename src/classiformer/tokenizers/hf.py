"""A pretrained encoder's own tokenizer (``transformers.AutoTokenizer``), loaded, never trained.

Ids include the model's special tokens ([CLS] ... [SEP] for BERT) and never exceed
``max_length``. Longer texts are cut by the ``long_text`` policy: ``truncate`` keeps the head;
``head-tail`` keeps the first quarter and the last three quarters of the budget (Sun et al., 2019,
"How to Fine-Tune BERT for Text Classification": head 128 + tail 382 of 510 worked best on IMDB);
``chunks`` also truncates in :meth:`encode`, and :meth:`encode_windows` gives the overlapping
windows that prediction averages over.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..config import LONG_TEXT_MODES, ConfigError
from ..hub import ModelSourceError

HF_DIR = "hf"  # the transformers tokenizer files, in a sub-folder so its tokenizer_config.json is not ours


class HFTokenizer:
    kind = "hf"

    def __init__(self, tokenizer: Any, max_length: int, long_text: str = "truncate", limit: int | None = None) -> None:
        if long_text not in LONG_TEXT_MODES:
            raise ValueError(f"long_text must be one of {list(LONG_TEXT_MODES)}, got {long_text!r}")
        if tokenizer.pad_token_id is None:
            raise ValueError(f"tokenizer {tokenizer.name_or_path!r} has no padding token; classiformer needs one")
        self.tok = tokenizer
        self.pad_id = int(tokenizer.pad_token_id)
        self.long_text = long_text
        self.max_length = max_length
        self.prefix, self.suffix = _special_template(tokenizer)
        self.n_special = len(self.prefix) + len(self.suffix)
        if limit is not None and max_length > limit:
            raise ConfigError(f"max_length {max_length} exceeds the encoder's limit of {limit} tokens")
        if max_length <= self.n_special:
            raise ValueError(f"max_length {max_length} leaves no room for text next to {self.n_special} special tokens")

    @classmethod
    def from_pretrained(cls, source: str | Path, max_length: int, long_text: str = "truncate", limit: int | None = None) -> HFTokenizer:
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(str(source), use_fast=True)
        if len(tok) <= len(tok.all_special_ids):  # a folder with a model but no vocabulary files
            raise ModelSourceError(
                f"{source}: no tokenizer vocabulary found (the tokenizer has only its {len(tok)} special tokens); "
                "put the tokenizer files (vocab.txt or tokenizer.json) next to the model"
            )
        return cls(tok, max_length, long_text, limit)

    @property
    def vocab_size(self) -> int:
        return len(self.tok)

    @property
    def window(self) -> int:
        """Text tokens that fit in one input beside the special tokens."""
        return self.max_length - self.n_special

    def _content(self, texts: list[str]) -> list[list[int]]:
        return self.tok(list(texts), add_special_tokens=False, truncation=False, verbose=False)["input_ids"]

    def _wrap(self, ids: list[int]) -> np.ndarray:
        return np.array(self.prefix + list(ids) + self.suffix, dtype=np.int64)

    def encode(self, texts: list[str]) -> list[np.ndarray]:
        """One id array per text, special tokens included, at most ``max_length`` long."""
        w = self.window
        if self.long_text == "head-tail":
            head = w // 4
            return [self._wrap(ids if len(ids) <= w else ids[:head] + ids[len(ids) - (w - head):]) for ids in self._content(texts)]
        return [self._wrap(ids[:w]) for ids in self._content(texts)]

    def encode_windows(self, texts: list[str], overlap: float = 0.25) -> tuple[list[np.ndarray], np.ndarray]:
        """Overlapping windows of every text: (id arrays, owner) where ``owner[j]`` is the index of
        the text that window ``j`` belongs to. Windows advance by ``(1 - overlap)`` of a window;
        the last one is aligned with the end of the text so no window is a short leftover."""
        w = self.window
        stride = max(1, int(w * (1 - overlap)))
        out: list[np.ndarray] = []
        owner: list[int] = []
        for i, ids in enumerate(self._content(texts)):
            starts = list(range(0, max(1, len(ids) - w + stride), stride))
            starts = [s for s in starts if s + w < len(ids)] + [max(0, len(ids) - w)]
            for s in starts:
                out.append(self._wrap(ids[s : s + w]))
                owner.append(i)
        return out, np.array(owner, dtype=np.int64)

    def tokens(self, text: str) -> list[str]:
        """The tokens behind ``encode([text])[0]``, special tokens included."""
        return list(self.tok.convert_ids_to_tokens(self.encode([text])[0].tolist()))

    def to_config(self) -> dict[str, Any]:
        return {"kind": self.kind, "max_length": self.max_length, "long_text": self.long_text}

    def save(self, folder: Path) -> None:
        self.tok.save_pretrained(str(folder / HF_DIR))

    @classmethod
    def load(cls, folder: Path, config: dict[str, Any]) -> HFTokenizer:
        return cls.from_pretrained(folder / HF_DIR, int(config["max_length"]), config.get("long_text", "truncate"))


def _special_template(tokenizer: Any) -> tuple[list[int], list[int]]:
    """The special ids a single text gets before and after it ([CLS] and [SEP] for BERT), found by
    encoding a probe with and without them."""
    for probe in ("a", "the", "hello", "x", "1"):
        bare = tokenizer(probe, add_special_tokens=False)["input_ids"]
        full = tokenizer(probe, add_special_tokens=True)["input_ids"]
        for start in range(len(full) - len(bare) + 1):
            if bare and full[start : start + len(bare)] == bare:
                return list(full[:start]), list(full[start + len(bare) :])
    raise ValueError(f"cannot work out the special tokens of tokenizer {tokenizer.name_or_path!r}")
