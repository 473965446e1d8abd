"""Inference batches: sorted by length, and on a CPU capped by padded tokens (pretrained encoders for cache, from-scratch models for padding)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from classiformer.data.batching import sorted_batches
from classiformer.inference import batch_tokens


def test_sorted_batches_cover_every_example_once_longest_first() -> None:
    lengths = np.array([5, 1, 9, 3, 9, 2, 7])
    batches = sorted_batches(lengths, 3)
    order = np.concatenate(batches)
    assert sorted(order.tolist()) == list(range(len(lengths)))
    assert [len(b) for b in batches] == [3, 3, 1]
    assert list(lengths[order]) == sorted(lengths.tolist(), reverse=True)


def test_a_token_budget_caps_each_batch_by_its_longest_member() -> None:
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 200, size=500)
    batches = sorted_batches(lengths, 256, max_tokens=1000)
    assert sorted(np.concatenate(batches).tolist()) == list(range(500))
    for b in batches:
        assert len(b) <= 256
        assert len(b) == 1 or len(b) * lengths[b].max() <= 1000
    # short texts fill up to the count limit; one text longer than the budget still gets a batch
    assert [len(b) for b in sorted_batches(np.full(600, 2), 256, max_tokens=1000)] == [256, 256, 88]
    assert [len(b) for b in sorted_batches(np.array([5000, 4]), 256, max_tokens=1000)] == [1, 1]


def test_only_models_that_ask_for_it_get_a_budget_and_only_on_a_cpu() -> None:
    class Capped(nn.Module):
        cpu_batch_tokens = 4096

    assert batch_tokens(nn.Linear(2, 2), "cpu") is None
    assert batch_tokens(Capped(), torch.device("cpu")) == 4096
    assert batch_tokens(Capped(), "cuda") is None


def test_from_scratch_models_cap_long_batches_without_changing_their_logits() -> None:
    """A length-sorted batch is padded to its longest member and attention costs the square of
    that length: the from-scratch families ask for a token budget too, which must change only how
    the texts are grouped."""
    from classiformer.config import RNNAttentionConfig, TransformerConfig
    from classiformer.data.batching import EncodedDataset
    from classiformer.inference import logits_for
    from classiformer.models import RNNAttentionClassifier, TransformerClassifier

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    data = EncodedDataset([rng.integers(2, 99, size=n) for n in rng.integers(5, 400, size=120)])
    for model in (TransformerClassifier(TransformerConfig(vocab_size=99, max_length=400, embed_dim=16, num_heads=2,
                                                          ff_dim=16, num_labels=3)),
                  RNNAttentionClassifier(RNNAttentionConfig(vocab_size=99, max_length=400, embed_dim=8, hidden_dim=8,
                                                            attention_dim=8, num_labels=3))):
        cap = batch_tokens(model, "cpu")
        assert cap is not None and cap >= 4096
        widths: list[int] = []
        hook = model.register_forward_pre_hook(lambda m, args, kw, w=widths: w.append(kw["input_ids"].numel()), with_kwargs=True)
        capped = logits_for(model, data, pad_id=0, batch_size=256)
        hook.remove()
        assert len(widths) > 1 and max(widths) <= cap  # one uncapped batch of 120 would hold ~48,000
        type(model).cpu_batch_tokens = None  # type: ignore[attr-defined]
        try:
            uncapped = logits_for(model, data, pad_id=0, batch_size=256)
        finally:
            type(model).cpu_batch_tokens = cap  # type: ignore[attr-defined]
        np.testing.assert_allclose(capped, uncapped, rtol=1e-4, atol=1e-5)
