"""Running an exported model with ONNX Runtime (https://onnxruntime.ai/docs/api/python/).

:class:`OnnxRunner` keeps the :class:`~classiformer.inference.Runner` contract that
``Classifier`` uses for PyTorch models too: length-sorted batches (``sorted_batches``, with the
same cap on padded tokens per batch that a pretrained encoder gets on a CPU), float32 logits back
in input order. So ``predict``, ``evaluate``, ``calibrate`` and ``serve`` treat an exported folder
like a checkpoint.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from ..checkpoint import ONNXRUNTIME, TOKENIZER_DIR, CheckpointError, CheckpointMeta, read_meta
from ..data.batching import EncodedDataset, pad, sorted_batches
from ..runtime import chosen_threads, default_threads
from ..tokenizers import Tokenizer, load_tokenizer

log = logging.getLogger(__name__)

ONNX_FILE = "model.onnx"
INPUTS = ("input_ids", "attention_mask")
# Most padded tokens per ONNX Runtime batch (or the model's own cap, ``cpu_batch_tokens``, where
# smaller). ONNX Runtime materialises each batch's attention scores (B, heads, T, T), where PyTorch's fused
# attention does not, so long batches leave the cache: `lesson` on the 1,520 AG News evaluation
# texts, 1 thread, batches of 256, EPYC-AVX2: 2,512 docs/s uncapped, 5,587 at 4,096 tokens, 6,162
# at 2,048, 5,533 at 1,024 (PyTorch 2,975, load ~12); `base` 2,785 / 5,340 / 5,421 / 5,176 (PyTorch
# 4,108). MiniLM int8 on 200 SST-2 sentences (the encoder's own cap is 4,096): 40 docs/s in batches
# of 256, 55 at 4,096 tokens, 58-75 at 2,048, 74 at 1,024 (but IMDB's longer texts 29 / 27 / 22).
# docs/benchmarks.md, "Export and ONNX Runtime".
ONNX_BATCH_TOKENS = 2048


def batch_tokens(model_cap: int | None) -> int:
    """The padded-token cap of an ONNX Runtime batch: :data:`ONNX_BATCH_TOKENS`, or the model's own
    (``cpu_batch_tokens`` in classiformer.json) where smaller."""
    return min(model_cap or ONNX_BATCH_TOKENS, ONNX_BATCH_TOKENS)


def require_onnxruntime() -> Any:
    """The ``onnxruntime`` module, or a clear error naming the extra that installs it."""
    try:
        import onnxruntime
    except ImportError:
        raise CheckpointError(
            "exported models run with ONNX Runtime, which is not installed: pip install 'classiformer[export]'"
        ) from None
    return onnxruntime


def intra_op_threads(threads: int | None = None) -> int:
    """``threads``, else what ``runtime.choose_threads`` chose (``--threads`` of every command, by
    default the free cores), else PyTorch's setting where PyTorch is loaded, so both runtimes use
    the same number; else the free cores. PyTorch is never imported here."""
    torch = sys.modules.get("torch")
    return int(threads or chosen_threads() or (torch.get_num_threads() if torch is not None else 0) or default_threads())


def session(path: Path, threads: int | None = None) -> Any:
    """An ``InferenceSession`` on the CPU with ``threads`` intra-op threads (:func:`intra_op_threads`)
    and one inter-op thread (the graph is one chain). A file that is not a valid ONNX model raises
    :class:`CheckpointError` naming it."""
    ort = require_onnxruntime()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = intra_op_threads(threads)
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # The arena keeps the largest batch's memory for reuse, a bounded amount: batches are capped by
    # batch size x max length, and a pretrained encoder's by padded tokens too (max_tokens below).
    # Without it every batch allocates afresh: `lesson` on the AG News split ran at 3,416 docs/s
    # with it off against 7,100 on (PyTorch 5,503; shrinking the arena after each run: 3,495).
    opts.enable_cpu_mem_arena = True
    opts.log_severity_level = 3
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: missing; an exported model folder holds {ONNX_FILE}")
    try:
        return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own pybind exception types
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{path}: not a loadable ONNX model ({first}); export it again") from None


class OnnxRunner:
    """An ONNX model of the batch contract: ``input_ids`` and ``attention_mask`` (B, T) int64 in,
    ``logits`` (B, C) out. ``max_tokens`` caps the padded tokens of one batch (pretrained encoders
    run faster in batches that stay in cache: ``inference.batch_tokens``)."""

    def __init__(self, path: Path, pad_id: int, threads: int | None = None, max_tokens: int | None = None) -> None:
        self.path = Path(path)
        self.session = session(self.path, threads)
        self.pad_id = pad_id
        self.max_tokens = max_tokens
        names = [i.name for i in self.session.get_inputs()]
        if sorted(names) != sorted(INPUTS):
            raise CheckpointError(f"{self.path}: inputs {names}, expected {list(INPUTS)}")
        self.threads = intra_op_threads(threads)

    def run(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        """Logits (B, C) float32 of one padded batch."""
        out = self.session.run(["logits"], {"input_ids": input_ids, "attention_mask": attention_mask})[0]
        return np.asarray(out, dtype=np.float32)

    def logits(self, data: EncodedDataset, batch_size: int, progress: bool = False) -> np.ndarray:
        lengths = data.lengths
        out: np.ndarray | None = None
        batches = sorted_batches(lengths, batch_size, self.max_tokens)
        for idx in tqdm(batches, desc="predict", unit="batch", disable=not progress, leave=False):
            chunk = self.run(*pad([data.ids[i] for i in idx], self.pad_id))
            if out is None:
                out = np.empty((len(data), chunk.shape[1]), dtype=np.float32)
            out[idx] = chunk
        if out is None:
            raise ValueError("no examples to predict")
        return out


def load_exported(folder: Path, threads: int | None = None) -> tuple[OnnxRunner, Tokenizer, CheckpointMeta]:
    """(runner, tokenizer, metadata) of a folder written by ``classiformer export``."""
    folder = Path(folder)
    meta = read_meta(folder)
    if meta.runtime != ONNXRUNTIME:
        raise CheckpointError(f"{folder}: a {meta.runtime} checkpoint, not an exported ONNX model")
    try:
        # The Rust tokenizer alone for a pretrained encoder: the same ids, no transformers, no PyTorch.
        tokenizer = load_tokenizer(folder / TOKENIZER_DIR, hf_backend="tokenizers")
    except Exception as e:
        raise CheckpointError(f"{folder / TOKENIZER_DIR}: cannot load tokenizer ({e})") from None
    info = meta.export or {}
    runner = OnnxRunner(folder / ONNX_FILE, tokenizer.pad_id, threads, batch_tokens(info.get("cpu_batch_tokens")))
    return runner, tokenizer, meta
