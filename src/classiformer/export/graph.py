"""A model family's forward pass as an ONNX graph (torch.onnx, https://pytorch.org/docs/stable/onnx.html).

Every family keeps the batch contract, so one wrapper serves them all: ``input_ids`` and
``attention_mask`` (B, T) int64 in, ``logits`` (B, C) float32 out, with the batch and sequence
axes dynamic. What is inside the graph:

- ``transformer``: embeddings, encoder blocks, masked mean, head, and the n-gram branch of
  ``base``, whose pair hashes ``(a * 1000003 + b) mod buckets`` are int64 arithmetic in the graph
  (no hashing outside it, so the ids alone give the same logits);
- ``rnn-attention``: the bidirectional GRU/LSTM over packed sequences (the exporter turns the
  lengths into the ONNX RNN's ``sequence_lens``, so the backward direction starts at each text's
  last real token) and the additive attention pooling;
- ``hf``: the Hugging Face encoder and head, with the [CLS]-only last layer of a fine-tuned BERT
  (``PretrainedClassifier._cls_only_logits``: a seventh less work with 6 layers).

The TorchScript exporter (``dynamo=False``) is used: the dynamo exporter of torch 2.13 fails on
the transformer family's graph and on packed sequences (tried; see docs/benchmarks.md).
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import torch
from torch import nn

from .runtime import INPUTS

log = logging.getLogger(__name__)

# ONNX opset the graphs are written with, recorded in classiformer.json. 17 has LayerNormalization
# as one operator and is read by every ONNX Runtime since 1.13 (2022).
OPSET = 17


class LogitsGraph(nn.Module):
    """``model`` reduced to (input_ids, attention_mask) -> logits (B, C) float32, for tracing."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask).logits.float()


def example_batch(pad_id: int, vocab_size: int, max_length: int, special: tuple[list[int], list[int]] = ([], [])) -> tuple[torch.Tensor, torch.Tensor]:
    """Two padded rows of different lengths (tracing follows the padded path), valid ids only."""
    width = max(2, min(7, max_length))
    low = min(2, max(vocab_size - 1, 0))  # ids 0 and 1 are padding and out-of-vocabulary for trained tokenizers
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(low, max(vocab_size, low + 1), (2, width), generator=g)
    prefix, suffix = special
    for row, n in ((0, width), (1, width - 1)):
        body = ids[row, :n].tolist()
        body = (prefix + body[len(prefix) : n - len(suffix)] + suffix)[:n]
        ids[row, :n] = torch.tensor(body)
    mask = torch.ones_like(ids)
    ids[1, width - 1 :], mask[1, width - 1 :] = pad_id, 0
    return ids, mask


def export_graph(model: nn.Module, path: Path, example: tuple[torch.Tensor, torch.Tensor], opset: int = OPSET) -> None:
    """Write ``model`` (in eval mode, float32, on the CPU) to ``path`` as ONNX with dynamic batch
    and sequence axes."""
    graph = LogitsGraph(model).eval()  # the exporter re-applies the wrapper's mode to the whole tree
    axes = {name: {0: "batch", 1: "sequence"} for name in INPUTS}
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        # The tracer warns about Python-side checks (length limits) that the graph does not keep.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            graph, example, str(path), input_names=list(INPUTS), output_names=["logits"],
            dynamic_axes={**axes, "logits": {0: "batch"}}, opset_version=opset, dynamo=False,
            do_constant_folding=True,
        )
