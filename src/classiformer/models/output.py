"""The one output type every model family returns."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class ClassifierOutput:
    """logits: (B, C); loss: scalar when labels were given; attentions: one (B, H, T, T) tensor per
    layer when requested (rows are queries, columns keys; padded keys get zero weight);
    pooling_weights: (B, T) weights of an attention-pooling layer (the RNN family's additive
    attention), rows summing to 1 over real tokens, for models that pool that way."""

    logits: torch.Tensor
    loss: torch.Tensor | None = None
    attentions: tuple[torch.Tensor, ...] | None = None
    pooling_weights: torch.Tensor | None = None
