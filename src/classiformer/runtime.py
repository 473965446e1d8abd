"""Device, threads and seeding, chosen in one place and passed in."""

from __future__ import annotations

import contextlib
import ctypes
import functools
import logging
import os
import random
from typing import Any

import numpy as np
import torch

log = logging.getLogger(__name__)


def resolve_device(name: str | None = None) -> torch.device:
    """``auto`` (or None) picks CUDA when available, else CPU."""
    if name in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for, but no CUDA GPU is available")
    return device


def pad_multiple(device: torch.device | str) -> int:
    """Batch lengths are rounded up to a multiple of this. On a GPU each new (batch, length) shape
    costs hundreds of milliseconds the first time it runs (bench/gpu_shapes.py on an H200: MiniLM
    training steps over 120 new lengths took 346 ms each, 20 ms once seen; rounded to 64, 43 ms the
    first time), so a few shapes beat tight padding there. A CPU pays no such cost: it pads to the
    longest member only."""
    return 64 if torch.device(device).type == "cuda" else 1


@functools.cache
def _malloc_trim() -> Any:
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc (macOS, musl, Windows)
        return None


def release_free_memory() -> None:
    """Hand memory that is free but kept by glibc's allocator back to the system. Training on
    texts of varying length frees and reallocates tensors of ever-changing sizes, and the heap
    otherwise keeps growing (MiniLM at 512 tokens on a CPU: 4.5 -> 6.3 GB over 113 steps, 12 GB
    after 1,400; see docs/benchmarks.md). A no-op where the C library is not glibc."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def limit_onednn_cache(capacity: int = 16) -> None:
    """Keep oneDNN's cache of compiled CPU kernels small (default 1,024 entries: one per matrix
    shape, and length-bucketed batches bring hundreds of shapes, each holding buffers). Must run
    before the first oneDNN kernel; a value the user set in ONEDNN_PRIMITIVE_CACHE_CAPACITY wins."""
    os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", str(capacity))


def set_threads(threads: int | None = None) -> int:
    """Use ``threads`` intra-op threads (default: all cores the process may use)."""
    if threads is None or threads <= 0:
        threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    torch.set_num_threads(threads)
    return threads


def amp_dtype(bf16: bool = False, fp16: bool = False) -> torch.dtype | None:
    """The reduced precision asked for: bfloat16 (CPUs with bf16 units, recent GPUs), float16 (GPUs
    without bf16, e.g. T4 or V100; training then scales the loss) or None for float32."""
    if bf16 and fp16:
        raise ValueError("choose one of bf16 and fp16, not both")
    return torch.bfloat16 if bf16 else torch.float16 if fp16 else None


def autocast(device: torch.device | str, dtype: torch.dtype | None) -> Any:
    """Autocast to ``dtype`` for forward passes (matrix products in ``dtype``, reductions and the
    loss in fp32); a no-op context when ``dtype`` is None."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=dtype)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def configure_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
