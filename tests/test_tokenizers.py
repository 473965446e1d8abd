from __future__ import annotations

from pathlib import Path

import numpy as np

from classiformer.config import TokenizerConfig
from classiformer.tokenizers import WordVectorizer, load_tokenizer, save_tokenizer, train_tokenizer
from classiformer.tokenizers.words import split_words

TEXTS = ["The cat sat.", "The dog, the cat!", "Dogs don't sit; cats do.", "U.S.-led talks"]


def test_word_vectorizer_follows_the_lesson() -> None:
    assert split_words("Hello, World! Don't") == ["hello", "world", "dont"]
    tok = WordVectorizer.fit(TEXTS, vocab_size=5, max_length=3)
    assert tok.vocab[:2] == ["[PAD]", "[UNK]"]
    assert tok.vocab[2:] == ["the", "cat", "sat"]  # most frequent first, ties by first appearance
    ids = tok.encode(["the cat barked loudly today", ""])
    assert ids[0].tolist() == [2, 3, 1]  # truncated to max_length, OOV = 1
    assert ids[1].tolist() == [1]  # an empty text still gets one position


def test_min_frequency_drops_rare_words() -> None:
    tok = WordVectorizer.fit(TEXTS, vocab_size=100, max_length=8, min_frequency=2)
    assert set(tok.vocab[2:]) == {"the", "cat"}


def test_word_vectorizer_round_trip(tmp_path: Path) -> None:
    tok = train_tokenizer(TokenizerConfig(kind="words", vocab_size=50, max_length=6), TEXTS)
    save_tokenizer(tok, tmp_path)
    again = load_tokenizer(tmp_path)
    probe = TEXTS + ["unseen words here", "ÜNICODE façade"]
    for a, b in zip(tok.encode(probe), again.encode(probe)):
        np.testing.assert_array_equal(a, b)


def test_wordpiece_round_trip(tmp_path: Path) -> None:
    corpus = TEXTS * 20 + ["unbelievable believers believe", "tokenization tokenizer tokens"] * 10
    tok = train_tokenizer(TokenizerConfig(kind="wordpiece", vocab_size=120, max_length=9), corpus)
    assert tok.pad_id == 0
    ids = tok.encode(["unbelievable tokenization of cats", "x " * 30])
    assert len(ids[1]) == 9  # truncated
    assert any(t.startswith("##") for t in tok.tokens("believably tokenizers"))
    save_tokenizer(tok, tmp_path)
    again = load_tokenizer(tmp_path)
    probe = ["unbelievable tokenization of cats", "Zebra QUARTZ", ""]
    for a, b in zip(tok.encode(probe), again.encode(probe)):
        np.testing.assert_array_equal(a, b)
