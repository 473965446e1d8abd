"""A WordPiece vocabulary trained on the training texts with Hugging Face ``tokenizers``
(Schuster & Nakajima, 2012; the BERT variant: lowercase, split on whitespace and punctuation)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

PAD, OOV = "[PAD]", "[UNK]"
TOKENIZER_JSON = "tokenizer.json"


class WordPieceTokenizer:
    kind = "wordpiece"
    pad_id = 0
    oov_id = 1

    def __init__(self, tokenizer: Tokenizer, max_length: int, lowercase: bool = True) -> None:
        self.tok = tokenizer
        self.max_length = max_length
        self.lowercase = lowercase
        self.tok.no_padding()
        self.tok.enable_truncation(max_length)
        if self.tok.token_to_id(PAD) != 0 or self.tok.token_to_id(OOV) != 1:
            raise ValueError(f"WordPiece vocabulary must map {PAD} to 0 and {OOV} to 1")

    @classmethod
    def fit(
        cls, texts: list[str], vocab_size: int, max_length: int, min_frequency: int = 1, lowercase: bool = True
    ) -> WordPieceTokenizer:
        tok = Tokenizer(models.WordPiece(unk_token=OOV))
        tok.normalizer = normalizers.BertNormalizer(lowercase=lowercase, strip_accents=lowercase)
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        trainer = trainers.WordPieceTrainer(
            vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=[PAD, OOV], show_progress=False
        )
        tok.train_from_iterator(texts, trainer=trainer, length=len(texts))
        return cls(tok, max_length, lowercase)

    @property
    def vocab_size(self) -> int:
        return int(self.tok.get_vocab_size())

    def encode(self, texts: list[str]) -> list[np.ndarray]:
        encs = self.tok.encode_batch(list(texts), add_special_tokens=False)
        return [np.array(e.ids or [self.oov_id], dtype=np.int64) for e in encs]

    def tokens(self, text: str) -> list[str]:
        return self.tok.encode(text, add_special_tokens=False).tokens or [OOV]

    def to_config(self) -> dict[str, Any]:
        return {"kind": self.kind, "max_length": self.max_length, "lowercase": self.lowercase}

    def save(self, folder: Path) -> None:
        self.tok.save(str(folder / TOKENIZER_JSON))

    @classmethod
    def load(cls, folder: Path, config: dict[str, Any]) -> WordPieceTokenizer:
        return cls(Tokenizer.from_file(str(folder / TOKENIZER_JSON)), int(config["max_length"]), bool(config.get("lowercase", True)))
