"""Device, threads, precision and seeding, chosen in one place and passed in.

CPU features come from ``/proc/cpuinfo`` (Linux's flag names, see the kernel's
``arch/x86/include/asm/cpufeatures.h``) and from ``torch.backends.cpu.get_cpu_capability()``
(the vector width PyTorch's own kernels were dispatched to).
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import logging
import os
import platform
import random
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

# torch is imported where it is used, not here: an exported model runs through ONNX Runtime in a
# process that never loads PyTorch (export/runtime.py), and it reads its thread count from here.

log = logging.getLogger(__name__)


def resolve_device(name: str | None = None) -> torch.device:
    """``auto`` (or None) picks CUDA when available, else CPU."""
    import torch

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
    import torch

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


def default_threads(cpus: int | None = None, load: float | None = None) -> int:
    """Threads for a CPU that others may share: the processors this process may use, less those
    other work already keeps busy (the 1-minute load average), at least one. On a busy machine a
    thread of ours waits for a peer the scheduler has put aside; bench/threads.py on a 2-core EPYC
    beside two CPU hogs (load 14-17): ``lesson`` trained at 416 samples/s on 1 thread against 37 on
    2 (passive waiting) and 23 on 2 spinning (docs/benchmarks.md). Processes that torchrun started
    side by side on one machine (``LOCAL_WORLD_SIZE``) split the CPUs between them."""
    cpus = available_cpus() if cpus is None else cpus
    if load is None:
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    local_world = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1))
    return max(1, min(cpus, cpus - int(load)) // local_world)


_chosen_threads: int | None = None  # what choose_threads chose last (the whole process's setting)


def choose_threads(threads: int | None = None) -> int:
    """The process's intra-op thread count: ``threads``, or :func:`default_threads` (the cores this
    process may use that other work leaves free) when None or 0. Remembered for
    :func:`chosen_threads`; PyTorch is not touched (an exported model's process never loads it)."""
    global _chosen_threads
    if threads is None or threads <= 0:
        threads = default_threads()
        if threads < available_cpus():
            log.info("other work keeps %d of %d CPUs busy (load average): using %d threads; --threads N to choose",
                     available_cpus() - threads, available_cpus(), threads)
    _chosen_threads = threads
    return threads


def chosen_threads() -> int | None:
    """What :func:`choose_threads` (or :func:`set_threads`) chose, None before either ran."""
    return _chosen_threads


def set_threads(threads: int | None = None) -> int:
    """:func:`choose_threads`, and PyTorch's intra-op threads set to that."""
    import torch

    threads = choose_threads(threads)
    torch.set_num_threads(threads)
    return threads


# Flags (as /proc/cpuinfo spells them) of the instruction sets that decide CPU matrix speed.
_X86_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile", "amx_bf16")
BF16_FORCE_ENV = "CLASSIFORMER_BF16"  # "force": use bf16 even on a CPU without bf16 matrix units


@dataclass(frozen=True)
class CpuFeatures:
    """What this CPU can do for matrix products. ``flags`` holds the names of :data:`_X86_FLAGS`
    (and ``bf16`` on ARM) the CPU reports; ``known`` is False where nothing could be read (no
    /proc/cpuinfo: macOS, Windows), in which case no decision is taken on the CPU's behalf."""

    model: str
    cores: int  # the processors this process may run on
    flags: tuple[str, ...]
    torch_capability: str
    known: bool = True

    @property
    def native_bf16(self) -> bool:
        """bf16 matrix products run on dedicated units (AVX512-BF16 dot products, AMX tiles, ARM
        BF16). Without them PyTorch emulates bf16 through fp32 conversions, several times slower
        than plain fp32 (docs/benchmarks.md: 5.7x on an AVX2-only EPYC)."""
        return any(f in self.flags for f in ("avx512_bf16", "amx_bf16", "bf16"))

    def summary(self) -> str:
        """One line for logs and benchmark output."""
        shown = ", ".join(self.flags) if self.known else "flags unknown"
        bf16 = "native bf16" if self.native_bf16 else "no native bf16" if self.known else "bf16 unknown"
        return f"{self.model}, {self.cores} cores, {shown}; torch kernels {self.torch_capability}; {bf16}"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "native_bf16": self.native_bf16, "summary": self.summary()}


def parse_cpuinfo(text: str, cores: int, torch_capability: str = "unknown") -> CpuFeatures:
    """The features in a /proc/cpuinfo text (x86 ``flags`` or ARM ``Features`` lines; the first
    processor's, as all cores of a machine report the same)."""
    model, flags = "", None
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key = key.strip().lower()
        if key in ("model name", "cpu model", "hardware") and not model:
            model = value.strip()
        elif key in ("flags", "features") and flags is None:
            flags = set(value.split())
    wanted = _X86_FLAGS + ("asimd", "bf16", "i8mm", "sve")
    found = tuple(f for f in wanted if f in (flags or ()))
    return CpuFeatures(model or platform.processor() or platform.machine(), cores, found, torch_capability,
                       known=flags is not None)


def available_cpus() -> int:
    """Processors this process may run on (its affinity mask, which a container or ``taskset``
    narrows), not the machine's count."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


@functools.cache
def cpu_features() -> CpuFeatures:
    """This machine's :class:`CpuFeatures` (read once)."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        text = ""
    import torch

    return parse_cpuinfo(text, available_cpus(), torch.backends.cpu.get_cpu_capability())


def bf16_worthwhile(device: torch.device | str, features: CpuFeatures | None = None,
                    env: dict[str, str] | None = None) -> bool:
    """Whether bf16 asked for on ``device`` should be used. On a CPU known to lack bf16 matrix units
    it is several times slower than fp32, so the answer is no (with a warning) unless
    ``CLASSIFORMER_BF16=force``. GPUs and CPUs whose features are unknown get what was asked."""
    import torch

    if torch.device(device).type != "cpu":
        return True
    features = features or cpu_features()
    if features.native_bf16 or not features.known:
        return True
    if (os.environ if env is None else env).get(BF16_FORCE_ENV, "").lower() == "force":
        log.warning("bf16 forced by %s=force on a CPU without bf16 matrix units; expect it to be "
                    "several times slower than fp32", BF16_FORCE_ENV)
        return True
    log.warning("bf16 asked for, but this CPU has no bf16 matrix units (%s): bf16 would be several times "
                "slower, so float32 is used instead; set %s=force to use bf16 anyway",
                features.model, BF16_FORCE_ENV)
    return False


def amp_dtype(bf16: bool = False, fp16: bool = False) -> torch.dtype | None:
    """The reduced precision asked for: bfloat16 (CPUs with bf16 units, recent GPUs), float16 (GPUs
    without bf16, e.g. T4 or V100; training then scales the loss) or None for float32."""
    if bf16 and fp16:
        raise ValueError("choose one of bf16 and fp16, not both")
    if not (bf16 or fp16):
        return None
    import torch

    return torch.bfloat16 if bf16 else torch.float16 if fp16 else None


def autocast(device: torch.device | str, dtype: torch.dtype | None) -> Any:
    """Autocast to ``dtype`` for forward passes (matrix products in ``dtype``, reductions and the
    loss in fp32); a no-op context when ``dtype`` is None."""
    if dtype is None:
        return contextlib.nullcontext()
    import torch

    return torch.autocast(device_type=torch.device(device).type, dtype=dtype)


def seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def configure_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
