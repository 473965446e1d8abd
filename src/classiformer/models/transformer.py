"""A transformer text classifier trained from scratch.

Follows the Keras example the lesson uses ("Text classification with Transformer", after Vaswani
et al., 2017, "Attention Is All You Need"): token + learned positional embedding, encoder blocks
(multi-head self-attention, feed-forward, residual + layer norm, dropout), masked mean pooling,
dropout, a ReLU hidden layer and the output layer. Padding never takes part: keys are masked in
attention and padded positions are left out of the mean.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..config import RNNAttentionConfig, TransformerConfig
from .output import ClassifierOutput, masked_mean


class Dropout(nn.Module):
    """``nn.Dropout`` with cheaper random numbers on the CPU.

    PyTorch's CPU dropout draws one number per element from its sequential Mersenne Twister, which
    was a tenth of a training step for the lesson model on IMDB. This draws one 64-bit number per
    four elements and keeps an element when 15 of its 16 bits clear ``p`` (resolution 2^-15:
    p = 0.1 drops 10.0006%). Other devices use ``F.dropout``. Seeded like any torch random draw.
    """

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        if x.device.type != "cpu":
            return F.dropout(x, self.p, True)
        n = x.numel()
        bits = torch.empty((n + 3) // 4, dtype=torch.int64).random_().view(torch.int16)[:n].view(x.shape)
        keep = (bits & 0x7FFF) >= round(self.p * 32768)  # the top bit of random_()'s int64 is always 0
        return x * keep.to(x.dtype).mul_(1.0 / (1.0 - self.p))

    def extra_repr(self) -> str:
        return f"p={self.p}"


class SelfAttention(nn.Module):
    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.num_heads = cfg.num_heads
        self.head_dim = cfg.head_dim or cfg.embed_dim // cfg.num_heads
        inner = self.num_heads * self.head_dim
        self.qkv = nn.Linear(cfg.embed_dim, 3 * inner)
        self.proj = nn.Linear(inner, cfg.embed_dim)
        self.dropout = cfg.attention_dropout

    def forward(
        self, x: torch.Tensor, keep: torch.Tensor, need_weights: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x: (B, T, E); keep: (B, T) bool, True for real tokens. Returns (B, T, E) and, when
        ``need_weights``, the attention weights (B, H, T, T)."""
        B, T, _ = x.shape
        qkv = self.qkv(x).view(B, T, 3, self.num_heads, self.head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each (B, H, T, D)
        key_mask = keep[:, None, None, :]  # (B, 1, 1, T)
        p = self.dropout if self.training else 0.0
        weights = None
        if need_weights:
            scores = (q @ k.transpose(-2, -1)) / math.sqrt(self.head_dim)  # (B, H, T, T)
            scores = scores.masked_fill(~key_mask, float("-inf"))
            weights = scores.softmax(dim=-1)
            y = F.dropout(weights, p, self.training) @ v  # (B, H, T, D)
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=key_mask, dropout_p=p)  # (B, H, T, D)
        y = y.transpose(1, 2).reshape(B, T, self.num_heads * self.head_dim)  # (B, T, H*D)
        return self.proj(y), weights


class FeedForward(nn.Module):
    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.up = nn.Linear(cfg.embed_dim, cfg.ff_dim)
        self.down = nn.Linear(cfg.ff_dim, cfg.embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(F.relu(self.up(x)))


class Block(nn.Module):
    """Post-norm as in the lesson (``norm_first=False``) or pre-norm, which trains deeper stacks
    more stably (Xiong et al., 2020)."""

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.attn = SelfAttention(cfg)
        self.ff = FeedForward(cfg)
        self.norm1 = nn.LayerNorm(cfg.embed_dim, eps=1e-6)
        self.norm2 = nn.LayerNorm(cfg.embed_dim, eps=1e-6)
        self.drop1 = Dropout(cfg.dropout)
        self.drop2 = Dropout(cfg.dropout)
        self.norm_first = cfg.norm_first

    def forward(
        self, x: torch.Tensor, keep: torch.Tensor, need_weights: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.norm_first:
            a, w = self.attn(self.norm1(x), keep, need_weights)
            x = x + self.drop1(a)
            x = x + self.drop2(self.ff(self.norm2(x)))
        else:
            a, w = self.attn(x, keep, need_weights)
            x = self.norm1(x + self.drop1(a))
            x = self.norm2(x + self.drop2(self.ff(x)))
        return x, w


def sample_deletions(keep: torch.Tensor, p: float, full_length: int = 0) -> torch.Tensor:
    """Which tokens (B, T) to delete: each real token with probability ``p``, except that a row
    of ``n`` tokens loses at least ``round(p * n) - 1`` of them; a row that would lose every token
    keeps them all. The floor changes little for short texts (none below four words) and caps a long
    row's survivors near their mean, so that rows of equal length (length bucketing makes most of a
    batch so) stay about equal and the batch pads to little more than it needs: a coin per token
    left 256-word rows with 154 +- 8 survivors, padded to the batch's ~175.

    With ``full_length`` > 0, a row shorter than that deletes at ``p * n / full_length`` instead (a
    question of 6 words at p = 0.4 and 24: 0.1, not 0.4), and no row ever loses most of its tokens
    (at most ``(n - 1) // 2``): deleting 40% of a title's words left too little to learn from
    (docs/benchmarks.md, "Defaults across data shapes")."""
    n = keep.sum(1, keepdim=True)  # (B, 1)
    rate: torch.Tensor | float = p
    if full_length > 0:
        rate = p * (n.float() / full_length).clamp(max=1.0)  # (B, 1)
    deleted = ((torch.rand(keep.shape, device=keep.device) < rate) & keep).sum(1, keepdim=True)
    deleted = torch.maximum(deleted, torch.round(n * rate).long() - 1)
    if full_length > 0:
        deleted = torch.minimum(deleted, ((n - 1) // 2).clamp(min=0))
    survivors = torch.where(deleted >= n, n, n - deleted)  # (B, 1), at least one
    # which ones: a uniformly random subset of that size (the lowest random scores survive)
    scores = torch.rand(keep.shape, device=keep.device).masked_fill(~keep, 2.0)  # padding scores last
    cutoff = scores.sort(1).values.gather(1, (survivors - 1).clamp(min=0))  # (B, 1)
    return keep & (scores > cutoff)


def delete_tokens(
    input_ids: torch.Tensor, keep: torch.Tensor, hide: torch.Tensor, pad_id: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Remove the ``hide`` tokens from each row (B, T), keeping the others in order, left-aligned
    and padded to the longest remaining row. A row that would lose every token keeps them all."""
    survivors = keep & ~hide
    emptied = ~survivors.any(1) & keep.any(1)
    survivors[emptied] = keep[emptied]
    counts = survivors.sum(1)  # (B,)
    T = max(1, int(counts.max()))
    # Compact without sorting: survivor j of a row goes to column j, the rest to a spill column T.
    dest = (survivors.cumsum(1) - 1).masked_fill(~survivors, T)
    out = input_ids.new_full((input_ids.shape[0], T + 1), pad_id).scatter_(1, dest, input_ids)
    keep = torch.arange(T, device=input_ids.device)[None] < counts[:, None]
    return out[:, :T], keep


class NgramBranch(nn.Module):
    """The "wide" part of a wide-and-deep model (Cheng et al., 2016): a linear classifier over the
    text's words and word pairs, like fastText (Joulin et al., 2017) without its hidden layer. Each
    word id and each hashed pair of neighbouring ids has one weight per class; the branch's logits
    are their sums over the text. It learns quickly which words and phrases carry a label, which a
    small transformer trained from scratch is slow to do, while the transformer adds word order and
    context. Weights start at zero, so the branch begins silent. Sums are divided by the square root
    of the count of words (or pairs), as TF-IDF rows are normalised. With ``ngram_idf`` each word
    counts with its inverse document frequency (smoothed as scikit-learn's ``TfidfVectorizer``:
    ``ln((1 + n) / (1 + df)) + 1``; 0 for ids no training text has) and the word sum is divided by
    the root sum of the squared weights, the TF-IDF row's length (Salton and Buckley, 1988)."""

    PAIR_PRIME = 1_000_003  # id pairs hash as (a * prime + b) mod buckets

    def __init__(self, cfg: TransformerConfig | RNNAttentionConfig) -> None:
        super().__init__()
        self.words = nn.Embedding(cfg.vocab_size, cfg.num_labels)
        # without pairs (``ngram_pairs`` False) the branch is a linear classifier over words alone
        self.pairs = nn.Embedding(cfg.ngram_buckets, cfg.num_labels) if cfg.ngram_pairs else None
        for emb in (self.words, self.pairs):
            if emb is not None:
                nn.init.zeros_(emb.weight)
        self.buckets = cfg.ngram_buckets
        self.scale = cfg.ngram_scale
        # ones until fit_idf sets them from the training data; a buffer, so the checkpoint keeps them
        self.idf: torch.Tensor | None
        self.register_buffer("idf", torch.ones(cfg.vocab_size) if cfg.ngram_idf else None)

    @torch.no_grad()
    def fit_idf(self, ids: Sequence[np.ndarray]) -> None:
        """Set the inverse document frequencies from the training texts' token ids."""
        if self.idf is None:
            return
        df = np.zeros(self.idf.numel(), dtype=np.float64)
        for row in ids:
            df[np.unique(np.asarray(row, dtype=np.int64))] += 1
        n = len(ids)
        # ids no training text has (the unknown-word id when every training word is in the
        # vocabulary) weigh 0, as TF-IDF leaves words out of its vocabulary: at the largest weight,
        # an untrained id would take most of a short text's row length
        self.idf.copy_(torch.from_numpy(np.where(df > 0, np.log((1.0 + n) / (1.0 + df)) + 1.0, 0.0)))

    def add_to(self, logits: torch.Tensor, input_ids: torch.Tensor | None, keep: torch.Tensor,
               aux_weight: float) -> tuple[torch.Tensor, tuple[tuple[float, torch.Tensor], ...]]:
        """The model's ``logits`` plus the branch's, and the training-time second loss on the branch
        alone (``ngram_aux``: ``((aux_weight, branch logits),)`` while training, else ``()``)."""
        if input_ids is None:
            raise ValueError("this model's n-gram branch needs input_ids (pass them with inputs_embeds)")
        wide = self(input_ids, keep)
        return logits + wide, ((aux_weight, wide),) if self.training and aux_weight else ()

    def forward(self, input_ids: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """input_ids, keep: (B, T). Returns logits (B, C)."""
        # divided by the square root of the count: like TF-IDF's unit-length rows, long texts neither
        # drown their words (as a mean would) nor swamp the logits (as a plain sum would)
        if self.idf is None:
            words = masked_mean(self.words(input_ids), keep, root=True)
        else:
            w = self.idf[input_ids] * keep.to(self.idf.dtype)  # (B, T)
            norm = (w * w).sum(1, keepdim=True).sqrt().clamp(min=1e-6)
            words = (self.words(input_ids) * w.unsqueeze(-1)).sum(1) / norm
        if self.pairs is None:
            return self.scale * words
        pairs = (input_ids[:, :-1] * self.PAIR_PRIME + input_ids[:, 1:]) % self.buckets  # (B, T-1)
        both = keep[:, :-1] & keep[:, 1:]
        return self.scale * (words + masked_mean(self.pairs(pairs), both, root=True))


class TransformerClassifier(nn.Module):
    family = "transformer"
    # Inference batches on a CPU hold at most this many padded tokens (inference.batch_tokens): a
    # length-sorted batch of 256 reviews is padded to its longest, and attention's cost grows with
    # the square of that length. Measured on the distilled IMDB ``base`` (512 words), 1 thread, AMD
    # EPYC (AVX2), 2026-12-03: 256 IMDB reviews 465 docs/s uncapped, 1,139 / 1,323 / 1,373 / 1,088 at
    # 32k / 16k / 8k / 4k tokens; 1,024 AG News rows 7,162 uncapped, 10,928 at 8k; SST-2 unchanged.
    cpu_batch_tokens = 8192

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.config = cfg
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.embed_dim, padding_idx=cfg.pad_id)
        self.pos_emb = nn.Embedding(cfg.max_length, cfg.embed_dim)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.num_layers))
        self.final_norm = nn.LayerNorm(cfg.embed_dim, eps=1e-6) if cfg.norm_first and cfg.num_layers else None
        self.drop = Dropout(cfg.dropout)
        if cfg.hidden_dim:
            self.hidden: nn.Module = nn.Sequential(
                nn.Linear(cfg.embed_dim, cfg.hidden_dim), nn.ReLU(), Dropout(cfg.dropout)
            )
            head_in = cfg.hidden_dim
        else:
            self.hidden = nn.Identity()
            head_in = cfg.embed_dim
        self.head = nn.Linear(head_in, cfg.num_labels)
        # Small embeddings (as BERT and GPT-2 initialise them, and close to Keras' uniform +-0.05):
        # PyTorch's N(0, 1) default leaves rare words as loud random vectors that the mean pooling
        # then averages in, which costs several points of accuracy on small training sets.
        for emb in (self.tok_emb, self.pos_emb):
            nn.init.normal_(emb.weight, std=0.02)
        with torch.no_grad():
            self.tok_emb.weight[cfg.pad_id].zero_()
        # last, so that the random draws above are the same with or without it
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

    def drop_words(self, input_ids: torch.Tensor, keep: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Word dropout while training, so that no single word is relied on: hide random tokens
        behind the unknown id, or delete them (shorter sequences, so training is also faster).
        input_ids, keep: (B, T) -> (B, T'), with T' < T only when deleting."""
        if not self.training or self.config.token_dropout == 0:
            return input_ids, keep
        if self.config.token_drop == "delete":
            hide = sample_deletions(keep, self.config.token_dropout, self.config.token_dropout_length)
            return delete_tokens(input_ids, keep, hide, self.config.pad_id)
        hide = (torch.rand(input_ids.shape, device=input_ids.device) < self.config.token_dropout) & keep
        return input_ids.masked_fill(hide, self.config.unk_id), keep

    def encode(
        self,
        input_ids: torch.Tensor | None,
        attention_mask: torch.Tensor,
        output_attentions: bool = False,
        inputs_embeds: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """input_ids, attention_mask: (B, T), or token embeddings ``inputs_embeds`` (B, T, E) in
        place of ``input_ids``. Returns token states (B, T, E), the mask of real tokens (B, T) and
        per-layer weights. (Word dropout happens before, in ``forward``.)"""
        keep = attention_mask.bool()
        if inputs_embeds is None:
            if input_ids is None:
                raise ValueError("pass input_ids or inputs_embeds")
            inputs_embeds = self.tok_emb(input_ids)  # (B, T, E)
        T = inputs_embeds.shape[1]
        if T > self.config.max_length:
            raise ValueError(f"sequence length {T} exceeds the model's max_length {self.config.max_length}")
        pos = torch.arange(T, device=inputs_embeds.device)
        x = inputs_embeds + self.pos_emb(pos)[None]  # (B, T, E)
        x = self.drop(x) if self.config.norm_first else x
        attentions = []
        for block in self.blocks:
            x, w = block(x, keep, output_attentions)
            if w is not None:
                attentions.append(w)
        if self.final_norm is not None:
            x = self.final_norm(x)
        return x, keep, attentions

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
        labels: (B,). Returns logits (B, C). With an n-gram branch, passing both ``input_ids`` and
        ``inputs_embeds`` feeds the ids to the branch and the embeddings to the transformer.
        While training, both parts see the same words, after word dropout."""
        keep = attention_mask.bool()
        if inputs_embeds is None and input_ids is not None:
            input_ids, keep = self.drop_words(input_ids, keep)
        x, keep, attentions = self.encode(input_ids if inputs_embeds is None else None, keep, output_attentions,
                                          inputs_embeds)
        pooled = masked_mean(x, keep)  # (B, E)
        logits = self.head(self.hidden(self.drop(pooled)))  # (B, C)
        aux: tuple[tuple[float, torch.Tensor], ...] = ()
        if self.ngrams is not None:
            logits, aux = self.ngrams.add_to(logits, input_ids, keep, self.config.ngram_aux)
        loss = F.cross_entropy(logits, labels) if labels is not None else None
        return ClassifierOutput(logits=logits, loss=loss, attentions=tuple(attentions) if output_attentions else None,
                                aux_logits=aux)
