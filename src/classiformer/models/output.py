"""The one output type every model family returns, and the masked pooling the families share."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class ClassifierOutput:
    """logits: (B, C); loss: scalar when labels were given; attentions: one (B, H, T, T) tensor per
    layer when requested (rows are queries, columns keys; padded keys get zero weight);
    pooling_weights: (B, T) weights of an attention-pooling layer (the RNN family's additive
    attention), rows summing to 1 over real tokens, for models that pool that way; aux_logits:
    see below."""

    logits: torch.Tensor
    loss: torch.Tensor | None = None
    attentions: tuple[torch.Tensor, ...] | None = None
    pooling_weights: torch.Tensor | None = None
    # training only: (weight, logits (B, C)) of parts of the model that are also trained alone (the
    # n-gram branch of a wide-and-deep transformer); the trainer adds weight * loss(logits)
    aux_logits: tuple[tuple[float, torch.Tensor], ...] = ()


def masked_mean(x: torch.Tensor, keep: torch.Tensor, root: bool = False) -> torch.Tensor:
    """Sum of x (B, T, D) over the positions where keep (B, T) is nonzero, divided by their count
    (at least 1), or by its square root when ``root``: (B, D). Padding never counts."""
    m = keep.to(x.dtype).unsqueeze(-1)  # (B, T, 1)
    n = m.sum(1).clamp(min=1.0)  # (B, 1)
    return (x * m).sum(1) / (n.sqrt() if root else n)
