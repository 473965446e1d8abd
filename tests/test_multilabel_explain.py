"""explain() on a multi-label model: per-label sigmoid probabilities, its top label explained."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from classiformer import Classifier, read_dataset
from classiformer.explain import integrated_gradients

from .test_multilabel_fit import write


def test_probabilities_are_the_models_sigmoids_and_the_top_label_is_explained(multilabel_classifier: Classifier, tmp_path: Path) -> None:
    texts = read_dataset(write(tmp_path / "t.jsonl", 12, seed=3)).texts
    proba = multilabel_classifier.predict_proba(texts)
    assert (np.abs(proba.sum(1) - 1) > 0.05).any()  # independent sigmoids, not a softmax
    for text, p in zip(texts[:4], proba[:4]):
        e = multilabel_classifier.explain(text, methods=("gradient",))
        assert list(e.probabilities) == multilabel_classifier.labels
        np.testing.assert_allclose(list(e.probabilities.values()), p, atol=1e-5)
        target = int(np.argmax(p))
        assert e.label == multilabel_classifier.labels[target]
        # Integrated gradients of the label's own sigmoid are complete: with enough steps they add up
        # to p(label | text) - p(label | zero embeddings).
        ids = torch.as_tensor(multilabel_classifier.tokenizer.encode([text])[0])[None]
        mask = torch.ones_like(ids)
        t = float(multilabel_classifier.label_temperatures[target])
        ig = integrated_gradients(multilabel_classifier.model, ids, mask, target, steps=512, temperature=t, sigmoid=True)
        emb = multilabel_classifier.model.get_input_embeddings()(ids)
        with torch.no_grad():
            z0 = multilabel_classifier.model(input_ids=None, attention_mask=mask, inputs_embeds=torch.zeros_like(emb)).logits[0, target]
        p0 = float(torch.sigmoid(z0 / t))
        assert float(ig.sum()) == pytest.approx(p[target] - p0, abs=0.02)
