"""Device, threads and seeding, chosen in one place and passed in."""

from __future__ import annotations

import contextlib
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


def set_threads(threads: int | None = None) -> int:
    """Use ``threads`` intra-op threads (default: all cores the process may use)."""
    if threads is None or threads <= 0:
        threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    torch.set_num_threads(threads)
    return threads


def autocast(device: torch.device | str, bf16: bool) -> Any:
    """bfloat16 autocast for forward passes when ``bf16`` (matrix products in bf16, reductions and
    the loss in fp32); a no-op context otherwise."""
    if not bf16:
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16)


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
