"""The from-scratch transformer: shapes, padding, attention paths, learning."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from classiformer.config import ConfigError, TransformerConfig
from classiformer.models import TransformerClassifier
from classiformer.models.transformer import Dropout

# Odd sizes expose swapped dimensions.
ODD = dict(vocab_size=99, max_length=13, embed_dim=30, num_heads=3, ff_dim=37, num_layers=2, hidden_dim=7, num_labels=5)


def make(**kw) -> TransformerClassifier:
    torch.manual_seed(0)
    return TransformerClassifier(TransformerConfig(**{**ODD, **kw})).eval()


def batch(B: int = 4, T: int = 11, pad_tail: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(2, 99, (B, T), generator=g)
    mask = torch.ones(B, T, dtype=torch.long)
    mask[1:, T - pad_tail :] = 0
    ids[mask == 0] = 0
    return ids, mask


@pytest.mark.parametrize("norm_first", [False, True])
def test_output_shapes(norm_first: bool) -> None:
    model = make(norm_first=norm_first)
    ids, mask = batch()
    out = model(ids, mask, labels=torch.tensor([0, 1, 2, 4]), output_attentions=True)
    assert out.logits.shape == (4, 5)
    assert out.loss is not None and out.loss.ndim == 0
    assert out.attentions is not None and len(out.attentions) == 2
    assert out.attentions[0].shape == (4, 3, 11, 11)


def test_extra_padding_leaves_logits_unchanged() -> None:
    model = make()
    ids, mask = batch(pad_tail=2)
    longer_ids = torch.cat([ids, torch.zeros(4, 2, dtype=torch.long)], 1)
    longer_mask = torch.cat([mask, torch.zeros(4, 2, dtype=torch.long)], 1)
    a = model(ids, mask).logits
    b = model(longer_ids, longer_mask).logits
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_padding_token_content_is_ignored() -> None:
    model = make()
    ids, mask = batch(pad_tail=4)
    noisy = ids.clone()
    noisy[mask == 0] = 42  # garbage under the mask must not matter
    torch.testing.assert_close(model(ids, mask).logits, model(noisy, mask).logits, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("head_dim", [0, 8])
def test_fast_and_weights_paths_agree(head_dim: int) -> None:
    model = make(head_dim=head_dim)
    ids, mask = batch()
    fast = model(ids, mask).logits
    slow = model(ids, mask, output_attentions=True)
    torch.testing.assert_close(fast, slow.logits, rtol=1e-5, atol=1e-5)
    assert slow.attentions is not None
    w = slow.attentions[0]
    torch.testing.assert_close(w.sum(-1), torch.ones_like(w.sum(-1)))
    assert torch.all(w[1:, :, :, -3:] == 0)  # padded keys get no weight


def test_too_long_input_is_rejected() -> None:
    model = make()
    ids = torch.ones(1, 14, dtype=torch.long)
    with pytest.raises(ValueError, match="max_length 13"):
        model(ids, torch.ones_like(ids))


def test_overfits_a_tiny_batch() -> None:
    torch.manual_seed(0)
    model = TransformerClassifier(TransformerConfig(**{**ODD, "dropout": 0.0})).train()
    ids, mask = batch(B=8)
    labels = torch.tensor([0, 1, 2, 3, 4, 0, 1, 2])
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(200):
        opt.zero_grad()
        out = model(ids, mask, labels=labels)
        assert out.loss is not None
        out.loss.backward()
        opt.step()
    assert out.loss.item() < 0.05
    assert (model.eval()(ids, mask).logits.argmax(1) == labels).all()


def test_config_validation() -> None:
    with pytest.raises(ConfigError, match="divisible"):
        TransformerConfig(embed_dim=10, num_heads=3)
    with pytest.raises(ConfigError, match="dropout"):
        TransformerConfig(dropout=1.5)


def test_token_dropout_only_while_training() -> None:
    model = make(token_dropout=0.5, dropout=0.0)
    ids, mask = batch()
    torch.testing.assert_close(model(ids, mask).logits, model(ids, mask).logits)  # eval: deterministic
    model.train()
    torch.manual_seed(0)
    a = model(ids, mask).logits
    torch.manual_seed(1)
    assert not torch.allclose(a, model(ids, mask).logits)


@pytest.mark.parametrize("p", [0.1, 0.5])
def test_cpu_dropout_rate_scale_and_seeding(p: float) -> None:
    drop = Dropout(p)
    x = torch.ones(64, 129, 7, requires_grad=True)  # odd element count: not a multiple of four
    torch.manual_seed(0)
    y = drop(x)
    dropped = (y == 0).float().mean().item()
    assert abs(dropped - p) < 0.01
    torch.testing.assert_close(y[y != 0], torch.full_like(y[y != 0], 1 / (1 - p)))
    y.sum().backward()
    assert x.grad is not None
    torch.testing.assert_close(x.grad, y.detach())  # gradient flows through kept elements only, scaled
    torch.manual_seed(0)
    torch.testing.assert_close(drop(x), y)  # same seed, same mask
    assert not torch.equal(drop(x), y)  # the next draw differs
    drop.eval()
    assert drop(x) is x


def test_delete_tokens_keeps_order_and_never_empties_a_row() -> None:
    from classiformer.models.transformer import delete_tokens

    ids = torch.tensor([[5, 6, 7, 8], [9, 10, 0, 0], [11, 0, 0, 0]])
    keep = ids != 0
    hide = torch.tensor([[False, True, False, True], [True, False, False, False], [True, False, False, False]])
    out, mask = delete_tokens(ids, keep, hide, pad_id=0)
    assert out.tolist() == [[5, 7], [10, 0], [11, 0]]  # row 3 would lose its only token: kept whole
    assert mask.tolist() == [[True, True], [True, False], [True, False]]


def test_sample_deletions_is_a_coin_per_word_with_a_floor_per_row() -> None:
    from classiformer.models.transformer import sample_deletions

    lengths = torch.tensor([40, 40, 2, 1, 0])
    keep = torch.arange(40)[None] < lengths[:, None]
    torch.manual_seed(0)
    counts = torch.stack([sample_deletions(keep, 0.4).sum(1) for _ in range(400)]).float()  # (400, 5)
    assert not (sample_deletions(keep, 0.4) & ~keep).any()  # padding is never "deleted"
    assert counts[:, :2].min() >= 15  # 40 words: at least round(0.4 * 40) - 1 deleted ...
    assert counts[:, :2].max() > 16 and 16.0 < counts[:, :2].mean() < 18.5  # ... more by chance
    assert set(counts[:, 2].tolist()) == {0.0, 1.0}  # 2 words: a coin each; losing both keeps both
    assert 0.35 < counts[:, 2].mean() < 0.6  # 2 * 0.4 * 0.6 = 0.48 of a word on average
    assert counts[:, 3:].max() == 0  # a single word always survives
    positions = torch.zeros(40)
    for _ in range(200):
        positions += sample_deletions(keep, 0.4)[0].float()
    assert positions.min() > 40 and positions.max() < 130  # every position is deleted at random


def test_word_deletion_trains_on_shorter_sequences_and_leaves_evaluation_alone() -> None:
    model = make(token_dropout=0.5, token_drop="delete", dropout=0.0)
    ids, mask = batch(B=6, T=12, pad_tail=4)
    expected = model(ids, mask).logits  # eval: nothing deleted
    torch.testing.assert_close(model(ids, mask).logits, expected)
    model.train()
    torch.manual_seed(0)
    out = model(ids, mask, output_attentions=True)
    assert torch.isfinite(out.logits).all()
    assert out.attentions is not None and out.attentions[0].shape[-1] < 12  # shorter while training
    with pytest.raises(ConfigError, match="token_drop"):
        TransformerConfig(token_drop="skip")


def wake_branch(wide: Any, plain: torch.nn.Module, ids: torch.Tensor, mask: torch.Tensor) -> None:
    """Check that ``wide``'s n-gram branch starts silent (zero weights: ``plain``'s logits), then give
    it random weights."""
    torch.testing.assert_close(wide(ids, mask).logits, plain(ids, mask).logits)
    assert wide.ngrams is not None
    with torch.no_grad():
        wide.ngrams.words.weight.normal_()
        wide.ngrams.pairs.weight.normal_()


def test_ngram_branch_starts_silent_and_sums_word_and_pair_weights() -> None:
    plain, wide = make(), make(ngram_buckets=17, ngram_scale=3.0)
    ids, mask = batch(pad_tail=4)
    wake_branch(wide, plain, ids, mask)
    W, P = wide.ngrams.words.weight, wide.ngrams.pairs.weight
    for row in range(len(ids)):
        toks = ids[row][mask[row].bool()].tolist()
        pairs = [(a * 1_000_003 + b) % 17 for a, b in zip(toks, toks[1:])]
        expected = 3.0 * (W[toks].sum(0) / len(toks) ** 0.5 + P[pairs].sum(0) / len(pairs) ** 0.5)
        got = wide(ids[row : row + 1], mask[row : row + 1]).logits - plain(ids[row : row + 1], mask[row : row + 1]).logits
        torch.testing.assert_close(got[0], expected, rtol=1e-5, atol=1e-5)
    noisy = ids.clone()
    noisy[mask == 0] = 42  # padding never forms words or pairs
    longer = torch.cat([ids, torch.zeros(4, 2, dtype=torch.long)], 1), torch.cat([mask, torch.zeros(4, 2, dtype=torch.long)], 1)
    torch.testing.assert_close(wide(noisy, mask).logits, wide(ids, mask).logits)
    torch.testing.assert_close(wide(*longer).logits, wide(ids, mask).logits, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="n-gram branch needs input_ids"):
        wide(None, mask, inputs_embeds=wide.get_input_embeddings()(ids))
    with pytest.raises(ConfigError, match="ngram_buckets"):
        TransformerConfig(ngram_buckets=-1)


def test_ngram_branch_without_pairs_weighs_words_alone() -> None:
    words_only = make(ngram_buckets=17, ngram_scale=3.0, ngram_pairs=False)
    plain = make()
    assert words_only.ngrams is not None and words_only.ngrams.pairs is None
    assert not any("pairs" in k for k in words_only.state_dict())  # no pair weights to train or store
    with torch.no_grad():
        words_only.ngrams.words.weight.normal_()
    W = words_only.ngrams.words.weight
    ids, mask = batch(pad_tail=4)
    for row in range(len(ids)):
        toks = ids[row][mask[row].bool()].tolist()
        got = (words_only(ids[row : row + 1], mask[row : row + 1]).logits
               - plain(ids[row : row + 1], mask[row : row + 1]).logits)
        torch.testing.assert_close(got[0], 3.0 * W[toks].sum(0) / len(toks) ** 0.5, rtol=1e-5, atol=1e-5)


def test_ngram_branch_learns_what_word_order_alone_decides() -> None:
    # "a b" vs "b a": same words, so only the pair weights (or attention) can tell them apart; a
    # model whose transformer has no blocks and no hidden layer learns it through the pairs alone.
    torch.manual_seed(0)
    model = TransformerClassifier(TransformerConfig(**{**ODD, "num_layers": 0, "hidden_dim": 0, "num_labels": 2,
                                                       "ngram_buckets": 101, "ngram_scale": 10.0}))
    ids = torch.tensor([[5, 6], [6, 5]] * 4)
    mask, labels = torch.ones_like(ids), torch.tensor([0, 1] * 4)
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(60):
        loss = model(ids, mask, labels=labels).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    assert model(ids, mask).logits.argmax(1).tolist() == labels.tolist()
    model.ngrams = None  # the rest sums the same embeddings for both orders: it cannot tell them apart
    plain = model(ids[:2], mask[:2]).logits
    torch.testing.assert_close(plain[0], plain[1])


def test_rnn_with_an_ngram_branch_adds_the_branch_logits_to_the_grus() -> None:
    from classiformer.config import RNNAttentionConfig
    from classiformer.models import RNNAttentionClassifier

    sizes = dict(vocab_size=99, max_length=13, embed_dim=10, hidden_dim=7, attention_dim=5, num_labels=5, dropout=0.0)
    torch.manual_seed(0)
    plain = RNNAttentionClassifier(RNNAttentionConfig(**sizes)).eval()
    torch.manual_seed(0)
    wide = RNNAttentionClassifier(RNNAttentionConfig(**sizes, ngram_buckets=17, ngram_scale=3.0, ngram_aux=1.0)).eval()
    ids, mask = batch(pad_tail=4)
    wake_branch(wide, plain, ids, mask)
    assert wide.ngrams is not None
    branch = wide.ngrams(ids, mask.bool())
    torch.testing.assert_close(wide(ids, mask).logits, plain(ids, mask).logits + branch)
    assert wide(ids, mask).aux_logits == ()  # the second loss is for training only
    wide.train()
    (weight, aux), = wide(ids, mask).aux_logits
    assert weight == 1.0
    torch.testing.assert_close(aux, branch)
    embeds = wide.get_input_embeddings()(ids)  # explanations: ids to the branch, embeddings to the GRU
    wide.eval()
    torch.testing.assert_close(wide(ids, mask, inputs_embeds=embeds).logits, wide(ids, mask).logits)
    with pytest.raises(ValueError, match="n-gram branch needs input_ids"):
        wide(None, mask, inputs_embeds=embeds)
    with pytest.raises(ConfigError, match="ngram_buckets"):
        RNNAttentionConfig(ngram_buckets=-1)
