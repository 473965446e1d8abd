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


def test_words_of_scripts_without_spaces_punctuation_and_symbols_beyond_ascii() -> None:
    # each Chinese / Japanese / Thai character a word; Unicode punctuation a space; emoji words
    assert split_words("房间很一般。宣传册说“三星”！") == ["房", "间", "很", "一", "般", "宣", "传", "册", "说", "三", "星"]
    assert split_words("日本語のテキスト") == ["日", "本", "語", "の", "テ", "キ", "ス", "ト"]
    assert split_words("ไทย\u200bดี") == ["ไ", "ท", "ย", "ด", "ี"]
    assert split_words("Great film 😀👍, «très» bien ¿verdad?") == ["great", "film", "😀", "👍", "très", "bien", "verdad"]
    assert split_words("love \u2764\ufe0f it") == split_words("love \u2764 it") == ["love", "\u2764", "it"]
    # spaced scripts keep their words, combining marks included; full-width forms are ASCII
    assert split_words("한국어 문장입니다. नमस्ते दुनिया") == ["한국어", "문장입니다", "नमस्ते", "दुनिया"]
    assert split_words("ＡＢＣ１２３ Don\u2019t don\u00b4t") == ["abc123", "dont", "dont"]
    # ASCII text splits exactly as before; so does anything under the rules of older vocabularies
    assert split_words("U.S.-led talks, Don't $5") == split_words("U.S.-led talks, Don't $5", split="ascii")
    assert split_words("房间很一般。", split="ascii") == ["房间很一般。"]


def test_a_vocabulary_saved_before_the_unicode_rules_keeps_its_rules(tmp_path: Path) -> None:
    texts = ["我很好", "他很好", "good film"]
    tok = train_tokenizer(TokenizerConfig(kind="words", vocab_size=50, max_length=6), texts)
    assert tok.to_config()["split"] == "unicode" and "很" in tok.vocab
    save_tokenizer(tok, tmp_path)
    assert load_tokenizer(tmp_path).encode(["我很好"])[0].tolist() == tok.encode(["我很好"])[0].tolist()
    # the config an older release wrote: no "split"
    (tmp_path / "tokenizer_config.json").write_text('{"kind": "words", "max_length": 6, "lowercase": true}')
    old = load_tokenizer(tmp_path)
    assert isinstance(old, WordVectorizer) and old.split == "ascii"
    assert old.tokens("我很好") == ["我很好"]


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
