"""Training on several processes and machines with ``torch.distributed``.

The processes are started by PyTorch's own launcher, ``torchrun`` (torch.distributed.elastic, also
behind ``classiformer train --nproc N``), or by an engine that starts torchrun-style workers (Ray
Train's ``TorchTrainer``, Spark's ``TorchDistributor``): see :mod:`classiformer.cluster`, which sits
above the training loop; this module sits below it, so the data readers can use it too. Each
process reads its rank from the launcher's environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``MASTER_ADDR``/``MASTER_PORT``) and joins one process group: gloo on CPUs, NCCL on GPUs, where
``LOCAL_RANK`` picks the process's GPU. Gradients are averaged by
``DistributedDataParallel`` (Li et al., 2020, "PyTorch Distributed: Experiences on Accelerating
Data Parallel Training", VLDB); see the PyTorch DDP notes and the torchrun documentation.

Everything else the training loop needs from its peers is here: who is rank 0 (the only process
that logs, draws progress bars and writes into the run folder), objects that rank 0 makes once
and shares (a vocabulary trained from the data), sums over ranks (the training loss and the
samples seen), the rows that each rank computed (validation logits, frozen features), and a
decision all ranks agree on (whether a stop was asked for). Every helper is a no-op in a single
process, so single-process training is unchanged, float for float.

Faults: collectives time out after :data:`TIMEOUT_ENV` seconds (default 600), so a rank that hangs
cannot hold its peers forever; a rank that dies closes its connections, which fails its peers'
next collective at once, and torchrun then stops the remaining workers and reports the first
failure by rank (see :func:`classiformer.cluster.launch`). On a clean exit every rank passes a
barrier before ``destroy_process_group``: without it torchrun + gloo aborted at exit ("terminate
called without an active exception") in 2 of 5 runs (issue 14). The abort still came, rarely, after the
barrier (rank 1 of one test in one CI run of the suite, 2026-12-02): during interpreter finalization,
where PyTorch's C++ threads (gloo's, the autograd engine's) release Python objects while the GIL is
being torn down (pytorch/pytorch#190489, #179291). So :func:`teardown` collects garbage first (a DDP
wrapper caught in a reference cycle keeps the process group alive until finalization otherwise),
and a worker that torchrun started leaves through :func:`leave_worker` once its work is done:
exit handlers run, then ``os._exit``, without the finalization in which the race lives.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime
import gc
import logging
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any, TypeVar

import numpy as np
import torch
import torch.distributed as dist

log = logging.getLogger(__name__)

T = TypeVar("T")

TIMEOUT_ENV = "CLASSIFORMER_DIST_TIMEOUT"  # seconds a collective may wait for its peers
DEFAULT_TIMEOUT_S = 600.0


class DistributedError(RuntimeError):
    """A peer process failed, or the ranks could not agree; the message names the rank."""


# -- who am I ---------------------------------------------------------------------------------


def active() -> bool:
    """A process group with more than one process is running."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process's rank in the process group (0 without one)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def world_size() -> int:
    """The number of processes in the process group (1 without one)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def is_main() -> bool:
    """Rank 0: the one process that logs, draws progress bars and writes into the run folder."""
    return rank() == 0


def local_rank() -> int:
    """The process's index on its machine (torchrun's ``LOCAL_RANK``; 0 when not launched)."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def launched() -> bool:
    """Started by torchrun (or a launcher like it) as one of several processes."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def timeout_s() -> float:
    """How long a collective waits for its peers before failing (``CLASSIFORMER_DIST_TIMEOUT``)."""
    raw = os.environ.get(TIMEOUT_ENV, "")
    try:
        value = float(raw) if raw else DEFAULT_TIMEOUT_S
    except ValueError:
        raise ValueError(f"{TIMEOUT_ENV}={raw!r}: expected a number of seconds") from None
    if value <= 0:
        raise ValueError(f"{TIMEOUT_ENV}={raw!r}: expected a positive number of seconds")
    return value


# -- the process group ------------------------------------------------------------------------


def setup(device: str | None = None) -> torch.device:
    """Join the process group the launcher's environment describes, when there is one, and return
    this process's device: with CUDA (``device`` cuda or auto on a GPU machine), the GPU of
    ``LOCAL_RANK`` and the NCCL backend; else the CPU and gloo. Without a launcher (or when a
    process group already exists, as under Ray Train), nothing is set up."""
    from .runtime import resolve_device

    dev = resolve_device(device)
    if dev.type == "cuda" and launched():
        if dev.index not in (None, local_rank()):
            raise ValueError(f"--device {device} under torchrun: each process takes the GPU of its LOCAL_RANK; "
                             "pass --device cuda and choose GPUs with CUDA_VISIBLE_DEVICES")
        dev = torch.device("cuda", local_rank())
        torch.cuda.set_device(dev)
    if launched() and not dist.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_s()))
        log.info("rank %d of %d (%s, local rank %d), device %s", rank(), world_size(), backend, local_rank(), dev)
    return dev


def teardown(clean: bool = True) -> None:
    """Leave the process group (if :func:`setup` made one). With ``clean`` (every rank got here),
    a barrier first: ranks that leave while a peer still sends abort at exit. After a failure a
    barrier could wait for a rank that will never come, so there is none."""
    if not (dist.is_available() and dist.is_initialized()):
        return
    gc.collect()  # DDP wrappers and pending work in reference cycles: freed now, not at finalization
    if clean and world_size() > 1:
        dist.barrier()
    dist.destroy_process_group()


def leave_worker(code: int) -> None:
    """End a process that a launcher started (``WORLD_SIZE`` > 1) with ``code``, once its work is
    done and its process group destroyed: flush the streams and logs, run the exit handlers, then
    ``os._exit``, skipping the interpreter's finalization, where PyTorch's threads can abort the
    process after everything succeeded (module docstring). Elsewhere it returns, and the caller
    exits as usual."""
    if not launched():
        return
    logging.shutdown()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


@contextlib.contextmanager
def process_group(device: str | None = None) -> Iterator[torch.device]:
    """:func:`setup` on entry, :func:`teardown` on exit (barrier only when the body succeeded).
    A process group made by someone else (Ray Train) is left to its owner."""
    owned = launched() and not dist.is_initialized()
    dev = setup(device)
    try:
        yield dev
    except BaseException:
        if owned:
            teardown(clean=False)
        raise
    if owned:
        teardown(clean=True)


def _comm_device() -> torch.device:
    """Where tensors for collectives live: NCCL only moves CUDA tensors."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


# -- collectives (no-ops in one process) -------------------------------------------------------


def barrier() -> None:
    if active():
        dist.barrier()


def broadcast_object(obj: T, src: int = 0) -> T:
    """``obj`` as rank ``src`` has it, on every rank (pickled: objects of this program only)."""
    if not active():
        return obj
    box = [obj if rank() == src else None]
    dist.broadcast_object_list(box, src=src)
    return box[0]  # type: ignore[return-value]


def all_gather_object(obj: T) -> list[T]:
    """Every rank's ``obj``, in rank order, on every rank."""
    if not active():
        return [obj]
    out: list[Any] = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def all_sum(values: Sequence[float]) -> list[float]:
    """The element-wise sums over ranks of ``values`` (float64)."""
    if not active():
        return list(values)
    t = torch.tensor(list(values), dtype=torch.float64, device=_comm_device())
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return [float(v) for v in t.cpu()]


def agree_signal(signum: int | None) -> int | None:
    """The stop request of any rank (the largest signal number asked for), on every rank: a stop
    noted by one rank only would leave its peers waiting in the next step's all-reduce."""
    if not active():
        return signum
    t = torch.tensor([signum or 0], dtype=torch.int64, device=_comm_device())
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return int(t.item()) or None


def on_main(fn: Callable[[], T]) -> T:
    """Run ``fn`` on rank 0 only and hand its result to every rank. When it raises, rank 0 raises
    the error itself and the other ranks a :class:`DistributedError` quoting it, instead of
    waiting in their next collective for a rank that failed."""
    if not active():
        return fn()
    result: Any = None
    error: BaseException | None = None
    if is_main():
        try:
            result = fn()
        except BaseException as e:  # handed on to the peers, then raised here as it was
            error = e
    failed, value = broadcast_object((None if error is None else f"{type(error).__name__}: {error}", result))
    if error is not None:
        raise error
    if failed is not None:
        raise DistributedError(f"rank 0 failed: {failed}")
    return value


@contextlib.contextmanager
def on_main_context(cm: AbstractContextManager[Any]) -> Iterator[None]:
    """Enter ``cm`` on rank 0 only (a lock on the run folder), failing every rank when that fails."""
    if not active():
        with cm:
            yield
        return
    on_main(cm.__enter__)
    try:
        yield
    finally:
        if is_main():
            cm.__exit__(*sys.exc_info())


def gather_rows(part: np.ndarray) -> np.ndarray:
    """Join the (N, C) arrays in which each rank filled its own rows and left the others NaN
    (``inference.logits_for(..., part=...)``): every rank gets all N rows."""
    if not active():
        return part
    parts = all_gather_object(part)
    width = max(p.shape[1] for p in parts)
    out = np.full((len(part), width), np.nan, dtype=np.float32)
    for p in parts:
        if p.shape[1]:
            done = ~np.isnan(p).all(axis=1)
            out[done] = p[done]
    return out


# -- sharding the epoch -----------------------------------------------------------------------


def shard(n: int, start: int, rank_: int, world: int) -> list[int]:
    """The global batch positions rank ``rank_`` of ``world`` takes from an epoch of ``n`` batches
    whose first ``start`` are done: ``start + rank_``, ``start + rank_ + world``, ... One position
    per step slot and every rank the same number of slots; a slot past the end (``>= n``) is
    padding, a batch that the caller weighs 0, so every sample counts once and only once."""
    slots = -(-(n - start) // world) if n > start else 0
    return [start + rank_ + k * world for k in range(slots)]


def slot_weights(sizes: Sequence[int], start: int, rank_: int, world: int) -> list[float]:
    """The factor of rank ``rank_``'s mean batch loss at each of its :func:`shard` slots, for an
    epoch whose batches hold ``sizes`` examples: ``world * n / N``, where ``n`` is the rank's batch
    size and ``N`` the slot's size over all ranks (0 for padding). DDP averages gradients over
    ranks, so the step's gradient is then that of the mean loss over all the slot's examples: the
    gradient one process computes on the union of the ranks' batches, however unequal they are."""
    n = len(sizes)
    weights = []
    for g in shard(n, start, rank_, world):
        slot = g - rank_
        total = sum(sizes[j] for j in range(slot, min(slot + world, n)))
        weights.append(world * sizes[g] / total if g < n and total else 0.0)
    return weights


def wrap(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """``model`` in ``DistributedDataParallel`` when a process group runs, else ``model`` itself.
    A model whose steps may leave trainable parameters without gradient says so with
    ``ddp_find_unused_parameters = True`` (pretrained encoders' unused pooler)."""
    if not active():
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(
        model, device_ids=[device.index] if device.type == "cuda" else None,
        find_unused_parameters=bool(getattr(model, "ddp_find_unused_parameters", False)),
    )


def no_sync(model: torch.nn.Module) -> AbstractContextManager[Any]:
    """DDP's ``no_sync`` (accumulate gradients locally, no all-reduce) for a wrapped model; nothing
    for a plain one."""
    no_sync_ = getattr(model, "no_sync", None)
    return no_sync_() if no_sync_ is not None else contextlib.nullcontext()


def done_after(n: int, start: int, world: int, slots_done: int) -> int:
    """Global batches of the epoch consumed once every rank has done ``slots_done`` slots from
    ``start``: the data position a checkpoint stores, whatever the number of processes."""
    return min(n, start + slots_done * world)
