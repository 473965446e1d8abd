"""Explanations of a pretrained (Hugging Face) encoder: eager attention, special tokens, words."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from classiformer import Classifier, fit

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
    assert all(len(s) == 7 for s in w.importance.values())
    assert w.importance["gradient"][5] == pytest.approx(e.importance["gradient"][5] + e.importance["gradient"][6])
