"""A recurrent baseline: bidirectional GRU (or LSTM) encoder with additive attention pooling.

The lesson starts from attention in recurrent encoder-decoders (Bahdanau, Cho & Bengio, 2015,
"Neural Machine Translation by Jointly Learning to Align and Translate"). A classifier has no
decoder, so the query is a learned vector, as in Yang et al. (2016, "Hierarchical Attention
Networks"): score_t = v . tanh(W h_t + b), weights = softmax over the real tokens, and the
document vector is the weighted sum of the encoder states. Those weights (``pooling_weights``)
say which words the prediction rests on; ``explain`` shows them as the "attention" importance.

Padding never takes part: sequences are packed, so the backward direction starts at each text's
last real token, and padded positions get exactly zero attention weight.

With ``ngram_buckets``, the transformer's linear branch over words and hashed word pairs
(:class:`~classiformer.models.transformer.NgramBranch`, wide and deep: Cheng et al., 2016) adds its
logits to the recurrent encoder's: the branch learns the words that carry a label, the GRU their
order and composition.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from ..config import RNNAttentionConfig
from .output import ClassifierOutput
from .transformer import NgramBranch


class AdditiveAttention(nn.Module):
    """Bahdanau-style scoring of each state against a learned query."""

    def __init__(self, dim: int, attention_dim: int) -> None:
        super().__init__()
        self.proj = nn.Linear(dim, attention_dim)
        self.query = nn.Linear(attention_dim, 1, bias=False)

    def forward(self, states: torch.Tensor, keep: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """states: (B, T, D); keep: (B, T) bool. Returns the pooled (B, D) and weights (B, T)."""
        scores = self.query(torch.tanh(self.proj(states))).squeeze(-1)  # (B, T)
        scores = scores.masked_fill(~keep, float("-inf"))
        weights = scores.softmax(dim=-1)  # (B, T), zero on padding
        pooled = (weights.unsqueeze(-1) * states).sum(1)  # (B, D)
        return pooled, weights


class RNNAttentionClassifier(nn.Module):
    family = "rnn-attention"
    # Inference batches on a CPU hold at most this many padded tokens (inference.batch_tokens; see
    # TransformerClassifier): the distilled IMDB GRU, 1 thread, AMD EPYC, 2026-12-03: 1,024 IMDB
    # reviews 748 docs/s uncapped, 901 at 8k tokens; AG News and SST-2 within 3% either way.
    cpu_batch_tokens = 8192

    def __init__(self, cfg: RNNAttentionConfig) -> None:
        super().__init__()
        self.config = cfg
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.embed_dim, padding_idx=cfg.pad_id)
        rnn_cls = nn.GRU if cfg.cell == "gru" else nn.LSTM
        self.rnn = rnn_cls(
            cfg.embed_dim, cfg.hidden_dim, num_layers=cfg.num_layers, batch_first=True, bidirectional=True,
            dropout=cfg.dropout if cfg.num_layers > 1 else 0.0,
        )
        self.attention = AdditiveAttention(2 * cfg.hidden_dim, cfg.attention_dim)
        self.drop = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(2 * cfg.hidden_dim, cfg.num_labels)
        self.ngrams = NgramBranch(cfg) if cfg.ngram_buckets else None

    def head_parameters(self) -> list[nn.Parameter]:
        """The output layer's parameters (``train.head_lr`` applies to them)."""
        return list(self.head.parameters())

    def fresh_output_bias(self) -> torch.Tensor:
        """The bias of the output layer, drawn with the model (the trainer sets a multi-label
        head's to the labels' prior logits)."""
        return self.head.bias

    def get_input_embeddings(self) -> nn.Embedding:
        return self.tok_emb

    def forward(
        self,
        input_ids: torch.Tensor | None,
        attention_mask: torch.Tensor,
        labels: torch.Tensor | None = None,
        output_attentions: bool = False,
        inputs_embeds: torch.Tensor | None = None,
        **_: object,
    ) -> ClassifierOutput:
        """input_ids, attention_mask: (B, T) (or ``inputs_embeds`` (B, T, E) in place of the ids);
        labels: (B,). Returns logits (B, C) and the pooling weights (B, T). There is no token-to-token
        attention, so ``attentions`` is always None. With an n-gram branch, passing both
        ``input_ids`` and ``inputs_embeds`` feeds the ids to the branch and the embeddings to the GRU."""
        if inputs_embeds is None:
            if input_ids is None:
                raise ValueError("pass input_ids or inputs_embeds")
            inputs_embeds = self.tok_emb(input_ids)  # (B, T, E)
        T = inputs_embeds.shape[1]
        if T > self.config.max_length:
            raise ValueError(f"sequence length {T} exceeds the model's max_length {self.config.max_length}")
        keep = attention_mask.bool()
        lengths = keep.sum(1).clamp(min=1).cpu()
        x = self.drop(inputs_embeds)
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        states = pad_packed_sequence(self.rnn(packed)[0], batch_first=True, total_length=T)[0]  # (B, T, 2H)
        pooled, weights = self.attention(states, keep)  # (B, 2H), (B, T)
        logits = self.head(self.drop(pooled))  # (B, C)
        aux: tuple[tuple[float, torch.Tensor], ...] = ()
        if self.ngrams is not None:
            logits, aux = self.ngrams.add_to(logits, input_ids, keep, self.config.ngram_aux)
        loss = F.cross_entropy(logits, labels) if labels is not None else None
        return ClassifierOutput(logits=logits, loss=loss, attentions=None, pooling_weights=weights, aux_logits=aux)
