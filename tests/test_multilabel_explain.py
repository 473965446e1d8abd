"""explain() on a multi-label model: per-label sigmoid probabilities, its top label explained."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from classiformer import Classifier, fit, read_dataset
from classiformer.explain import integrated_gradients

from .test_multilabel_fit import config, write


@pytest.fixture(scope="module")
def clf(tmp_path_factory: pytest.TempPathFactory) -> Classifier:
    tmp = tmp_path_factory.mktemp("mlexplain")
    fit(config(), read_dataset(write(tmp / "train.jsonl", 300, seed=0)), tmp / "run", progress=False)
    return Classifier.load(tmp / "run")


def test_probabilities_are_the_models_sigmoids_and_the_top_label_is_explained(clf: Classifier, tmp_path: Path) -> None:
    texts = read_dataset(write(tmp_path / "t.jsonl", 12, seed=3)).texts
    proba = clf.predict_proba(texts)
    assert (np.abs(proba.sum(1) - 1) > 0.05).any()  # independent sigmoids, not a softmax
    for text, p in zip(texts[:4], proba[:4]):
        e = clf.explain(text, methods=("gradient",))
        assert list(e.probabilities) == clf.labels
        np.testing.assert_allclose(list(e.probabilities.values()), p, atol=1e-5)
        target = int(np.argmax(p))
        assert e.label == clf.labels[target]
        # Integrated gradients of the label's own sigmoid are complete: with enough steps they add up
        # to p(label | text) - p(label | zero embeddings).
        ids = torch.as_tensor(clf.tokenizer.encode([text])[0])[None]
        mask = torch.ones_like(ids)
        t = float(clf.label_temperatures[target])
        ig = integrated_gradients(clf.model, ids, mask, target, steps=512, temperature=t, sigmoid=True)
        emb = clf.model.get_input_embeddings()(ids)
        with torch.no_grad():
            z0 = clf.model(input_ids=None, attention_mask=mask, inputs_embeds=torch.zeros_like(emb)).logits[0, target]
        p0 = float(torch.sigmoid(z0 / t))
        assert float(ig.sum()) == pytest.approx(p[target] - p0, abs=0.02)
