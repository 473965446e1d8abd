"""ONNX Runtime's fused CPU operators in the graph of the from-scratch ``transformer`` family.

ONNX Runtime's contrib operators (https://onnxruntime.ai/docs/reference/operators/ContribOperators.html):

- ``com.microsoft::Attention``: the query/key/value projection, the scaled dot products with the
  key padding mask, the softmax and the weighted sum of values in one kernel, where the plain graph
  has about twenty operators (MatMul, Split, Transpose, Where, Softmax, ...), each writing its
  (B, heads, T, T) or (B, T, 3 x inner) intermediate to memory;
- ``com.microsoft::SkipLayerNormalization``: ``LayerNorm(input + skip + bias)``, the residual
  add, the output projection's bias and the LayerNorm of a post-norm block (Vaswani et al., 2017)
  in one pass over the activations.

ONNX Runtime's transformer optimizer (``fusion.py``) finds these patterns only in BERT graphs, so
the blocks are written with them directly while tracing: each ``torch.autograd.Function`` below
computes in PyTorch what its operator computes (tracing needs the values) and its ``symbolic``
names the operator. The export's parity check compares the result with the PyTorch model like any
other graph. A pre-norm block fuses its attention only (its LayerNorms come before the residuals).

Measured (`lesson` and `base` trained on the AG News split, its 1,520 evaluation texts, 1 thread,
AVX2-only AMD EPYC, quiet, 15 interleaved passes, tokenization included; docs/benchmarks.md, "Export
and ONNX Runtime"): ×1.54 / ×1.37 PyTorch's docs/s fused against ×1.41 / ×1.29 for the plain graph;
ONNX Runtime's profiler put `lesson`'s kernels at 109 ms per pass fused against 122 ms plain, at
1,024 padded tokens per batch.
"""

from __future__ import annotations

import contextlib
import types
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..models.transformer import Block, SelfAttention

DOMAIN = "com.microsoft"


class _Attention(torch.autograd.Function):
    """``Attention(x, weight (E, 3 x inner), bias (3 x inner), mask (B, T) int32)`` -> (B, T, inner):
    ``qkv = x @ weight + bias`` read as (3, heads, head_dim) per token, as ``SelfAttention.qkv``
    lays it out; keys where ``mask`` is 0 take no part."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, mask: torch.Tensor,
                num_heads: int, inner: int) -> torch.Tensor:
        B, T, _ = x.shape
        qkv = (x @ weight + bias).view(B, T, 3, num_heads, inner // num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask.bool()[:, None, None, :])
        return y.transpose(1, 2).reshape(B, T, inner)

    @staticmethod
    def symbolic(g: Any, x: Any, weight: Any, bias: Any, mask: Any, num_heads: int, inner: int) -> Any:
        y = g.op(f"{DOMAIN}::Attention", x, weight, bias, mask, num_heads_i=num_heads,
                 qkv_hidden_sizes_i=[inner, inner, inner])
        # typed here, as the exporter's shape inference knows no contrib operator
        y.setType(x.type().with_sizes([None, None, inner]))
        return y


class _SkipLayerNorm(torch.autograd.Function):
    """``SkipLayerNormalization(x, skip, gamma, beta, bias)`` = ``LayerNorm(x + skip + bias)``."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, skip: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor,
                bias: torch.Tensor, eps: float) -> torch.Tensor:
        return F.layer_norm(x + bias + skip, (x.shape[-1],), gamma, beta, eps)

    @staticmethod
    def symbolic(g: Any, x: Any, skip: Any, gamma: Any, beta: Any, bias: Any, eps: float) -> Any:
        y = g.op(f"{DOMAIN}::SkipLayerNormalization", x, skip, gamma, beta, bias, epsilon_f=eps)
        y.setType(x.type())
        return y


def _attention(attn: SelfAttention, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """(B, T, heads x head_dim): the attention of ``SelfAttention`` before its output projection."""
    inner = attn.num_heads * attn.head_dim
    return _Attention.apply(x, attn.qkv.weight.t(), attn.qkv.bias, keep.to(torch.int32), attn.num_heads, inner)


def _fused_block_forward(block: Block, x: torch.Tensor, keep: torch.Tensor,
                         need_weights: bool = False) -> tuple[torch.Tensor, None]:
    """``transformer.Block.forward`` in evaluation mode (dropout off) with the fused operators."""
    if need_weights:
        raise ValueError("the fused graph has no attention weights to return")
    attn, ff = block.attn, block.ff
    if block.norm_first:
        x = x + attn.proj(_attention(attn, block.norm1(x), keep))
        return x + ff(block.norm2(x)), None
    y = _attention(attn, x, keep)
    x = _SkipLayerNorm.apply(y @ attn.proj.weight.t(), x, block.norm1.weight, block.norm1.bias, attn.proj.bias,
                             block.norm1.eps)
    h = F.relu(ff.up(x))
    x = _SkipLayerNorm.apply(h @ ff.down.weight.t(), x, block.norm2.weight, block.norm2.bias, ff.down.bias,
                             block.norm2.eps)
    return x, None


def fusable(model: nn.Module) -> bool:
    """Whether ``model`` is a from-scratch transformer whose blocks :func:`fused_blocks` rewrites."""
    return getattr(model, "family", None) == "transformer" and len(getattr(model, "blocks", ())) > 0


@contextlib.contextmanager
def fused_blocks(model: nn.Module) -> Iterator[dict[str, int]]:
    """While open, ``model``'s encoder blocks run (and trace) with the fused operators; yields how
    many of each the graph gets (recorded in classiformer.json). ``model`` must be in eval mode."""
    if model.training:
        raise ValueError("fused blocks are for an evaluation-mode model (no dropout)")
    blocks: list[Block] = list(model.blocks)  # type: ignore[arg-type]
    made = {"Attention": len(blocks), "SkipLayerNormalization": 2 * sum(not b.norm_first for b in blocks)}
    for b in blocks:
        b.forward = types.MethodType(_fused_block_forward, b)  # type: ignore[method-assign]
    try:
        yield {k: v for k, v in made.items() if v}
    finally:
        for b in blocks:
            del b.forward  # back to the class's method
