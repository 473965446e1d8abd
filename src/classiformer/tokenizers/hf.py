"""A pretrained encoder's own tokenizer (``transformers.AutoTokenizer``), loaded, never trained.

Ids include the model's special tokens ([CLS] ... [SEP] for BERT) and never exceed
``max_length``. Longer texts are cut by the ``long_text`` policy: ``truncate`` keeps the head;
``head-tail`` keeps the first quarter and the last three quarters of the budget (Sun et al., 2019,
"How to Fine-Tune BERT for Text Classification": head 128 + tail 382 of 510 worked best on IMDB);
``chunks`` also truncates in :meth:`encode`, and :meth:`encode_windows` gives the overlapping
windows that prediction averages over.

An exported model loads the same files with the ``tokenizers`` library itself (:class:`RustTokenizer`,
the Rust tokenizer that ``transformers``' fast tokenizers wrap): the same ids without importing
``transformers`` and PyTorch, and less Python around each call.
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
    def load(cls, folder: Path, config: dict[str, Any], backend: str = "transformers") -> HFTokenizer:
        """``backend``: ``transformers`` (``AutoTokenizer``), or ``tokenizers`` (:class:`RustTokenizer`
        on the folder's ``tokenizer.json``, for exported models; ``transformers`` where there is none)."""
        if backend not in ("transformers", "tokenizers"):
            raise ValueError(f"backend must be transformers or tokenizers, got {backend!r}")
        max_length, long_text = int(config["max_length"]), config.get("long_text", "truncate")
        if backend == "tokenizers" and (folder / HF_DIR / RustTokenizer.FILE).exists():
            return cls(RustTokenizer(folder / HF_DIR), max_length, long_text)
        return cls.from_pretrained(folder / HF_DIR, max_length, long_text)


class RustTokenizer:
    """The part of a ``transformers`` fast tokenizer that :class:`HFTokenizer` calls, on the
    ``tokenizers`` library directly (``tokenizer.json`` from ``save_pretrained``: the normalizer,
    pre-tokenizer, model and special-token template the fast tokenizer itself runs)."""

    FILE = "tokenizer.json"

    def __init__(self, folder: Path) -> None:
        import json

        from tokenizers import Tokenizer

        self.name_or_path = str(folder)
        self._tok = Tokenizer.from_file(str(folder / self.FILE))
        self._tok.no_truncation()
        self._tok.no_padding()
        config_path = folder / "tokenizer_config.json"
        config = json.loads(config_path.read_text(encoding="utf-8")) if config_path.exists() else {}
        pad = config.get("pad_token")
        pad = pad.get("content") if isinstance(pad, dict) else pad
        self.pad_token_id = self._tok.token_to_id(pad) if isinstance(pad, str) else None
        self.all_special_ids = sorted(int(i) for i, t in self._tok.get_added_tokens_decoder().items() if t.special)
        self._config = config

    def __len__(self) -> int:
        return int(self._tok.get_vocab_size(with_added_tokens=True))

    def __call__(self, texts: str | list[str], add_special_tokens: bool = True, **_: Any) -> dict[str, Any]:
        """``{"input_ids": ...}`` of one text or a list, as the fast tokenizer returns them (no
        truncation, no padding: :class:`HFTokenizer` applies its own policy)."""
        if isinstance(texts, str):
            return {"input_ids": self._tok.encode(texts, add_special_tokens=add_special_tokens).ids}
        return {"input_ids": [e.ids for e in self._tok.encode_batch(texts, add_special_tokens=add_special_tokens)]}

    def convert_ids_to_tokens(self, ids: list[int]) -> list[str]:
        return [self._tok.id_to_token(int(i)) or "" for i in ids]

    def save_pretrained(self, folder: str) -> None:
        import json

        Path(folder).mkdir(parents=True, exist_ok=True)
        self._tok.save(str(Path(folder) / self.FILE))
        (Path(folder) / "tokenizer_config.json").write_text(json.dumps(self._config, indent=2), encoding="utf-8")


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
