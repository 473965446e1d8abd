"""Explanations of a pretrained (Hugging Face) encoder: eager attention, special tokens, words."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from classiformer import Classifier, fit
from classiformer.cli import main

from .conftest import make_texts
from .test_pretrained import config_for, tiny_bert  # noqa: F401  (the fixture)


@pytest.fixture(scope="module")
def bert_clf(tiny_bert: Path, tmp_path_factory) -> Classifier:  # noqa: F811
    run = tmp_path_factory.mktemp("bert_explain")
    fit(config_for(tiny_bert, "finetune", epochs=1), make_texts(120, seed=1), run, progress=False)  # any weights will do
    return Classifier.load(run)


def test_explain_a_pretrained_encoder(bert_clf: Classifier) -> None:
    text = "the coach of the teams"  # "teams" is "team" + "##s" in the tiny vocabulary
    impl = bert_clf.model.hf.config._attn_implementation
    e = bert_clf.explain(text)
    assert bert_clf.model.hf.config._attn_implementation == impl  # switched to eager only while explaining
    assert e.tokens == ["[CLS]", "the", "coach", "of", "the", "team", "##s", "[SEP]"]
    assert e.special == [True, False, False, False, False, False, False, True]  # the tokenizer's own special ids
    assert set(e.importance) == {"rollout", "gradient"}
    assert all(len(s) == len(e.tokens) for s in e.importance.values())
    att = np.asarray(e.attentions)
    assert att.shape == (2, 3, 8, 8)
    np.testing.assert_allclose(att.sum(-1), 1.0, atol=1e-4)
    assert sum(e.importance["rollout"]) == pytest.approx(1.0, abs=1e-4)
    assert e.label == bert_clf.predict([text])[0]
    assert e.to_dict() == bert_clf.explain(text).to_dict()  # deterministic

    w = bert_clf.explain(text, words=True)
    assert w.tokens == ["[CLS]", "the", "coach", "of", "the", "teams", "[SEP]"]
    assert w.special == [True, False, False, False, False, False, True]
    assert all(len(s) == 7 for s in w.importance.values())
    assert w.importance["gradient"][5] == pytest.approx(e.importance["gradient"][5] + e.importance["gradient"][6])


def test_special_tokens_are_flagged_and_left_out_of_the_most_important(bert_clf: Classifier, tmp_path: Path,
                                                                        capsys) -> None:
    text = "the coach of the teams"
    e = bert_clf.explain(text)
    unk = bert_clf.explain("the coach \u2603")  # a snowman is not in the tiny vocabulary: [UNK]
    assert "[UNK]" in unk.tokens and unk.special[unk.tokens.index("[UNK]")]
    for method in e.importance:
        (top, _), = e.top_tokens(method, 1)
        assert top not in ("[CLS]", "[SEP]")
    assert [t for t, _ in e.top_tokens("rollout", len(e.tokens), include_special=True)][:1] == [
        e.tokens[int(np.argmax(e.importance["rollout"]))]]

    assert bert_clf.path is not None
    assert main(["explain", str(bert_clf.path), text, "-o", str(tmp_path / "a"), "--no-progress"]) == 0
    line = capsys.readouterr().out
    assert "most important" in line and "[CLS]" not in line and "[SEP]" not in line, line
    data = json.loads((tmp_path / "a" / "explanation.json").read_text())
    assert data["tokens"][0] == "[CLS]" and data["special"][0] is True  # the JSON keeps every token, flagged
    page = (tmp_path / "a" / "explanation.html").read_text()
    assert "Special tokens left out of this display: [CLS]" in page

    assert main(["explain", str(bert_clf.path), text, "-o", str(tmp_path / "b"), "--include-special"]) == 0
    line = capsys.readouterr().out
    best = data["tokens"][int(np.argmax(data["importance"]["rollout"]))]
    assert f"rollout={best!r}" in line
    assert best == "[CLS]"  # rollout through the residual path keeps most of the weight on [CLS]
    assert "Special tokens left out" not in (tmp_path / "b" / "explanation.html").read_text()
