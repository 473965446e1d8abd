"""Starting distributed training: on this machine through torch's elastic launcher (what
``torchrun`` runs), and on cluster engines that launch torchrun-style PyTorch workers: Ray Train
(``ray.train.torch.TorchTrainer``) and Spark (``pyspark.ml.torch.distributor.TorchDistributor``).

Never a process pool of our own: every worker runs the same :func:`classiformer.training.fit`
inside the process group the engine made, and :mod:`classiformer.distributed` does the rest.
References: the torchrun and ``torch.distributed.elastic`` documentation; Ray Train's "Get started
with PyTorch"; Spark's ``TorchDistributor`` API documentation.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .distributed import DistributedError, timeout_s

log = logging.getLogger(__name__)


def describe_failures(error: BaseException) -> str:
    """The failed rank(s) of torchrun's ``ChildFailedError``, by rank, exit code or signal. Once
    one rank fails the launcher stops the others with SIGTERM; those are named apart, as stopped.
    Ranks killed by a signal come first: a peer that then lost its connection exits with an error
    of its own, often before the launcher has seen the kill, and the kill is the cause."""
    failures = getattr(error, "failures", None) or {}

    def killed_by(failure: Any) -> int | None:
        """The signal that killed the rank (a negative exit code), or None."""
        code = getattr(failure, "exitcode", None)
        return -code if isinstance(code, int) and code < 0 else None

    def what(failure: Any) -> str:
        signum = killed_by(failure)
        if signum is not None:
            try:
                return f"killed by {signal.Signals(signum).name}"
            except ValueError:
                return f"killed by signal {signum}"
        return f"exit code {getattr(failure, 'exitcode', None)}"

    stopped = {r for r, f in failures.items() if getattr(f, "exitcode", None) == -signal.SIGTERM}
    if stopped == set(failures):  # a SIGTERM from outside stopped every rank
        stopped = set()
    order = sorted(failures.items(), key=lambda item: (killed_by(item[1]) is None, item[0]))
    lines = [f"rank {r} (local rank {getattr(f, 'local_rank', '?')}, pid {getattr(f, 'pid', '?')}) failed: {what(f)}"
             for r, f in order if r not in stopped]
    if stopped:
        lines.append("the launcher then stopped rank " + ", ".join(str(r) for r in sorted(stopped)))
    return "; ".join(lines) or str(error)


def launch(argv: Sequence[str], nproc: int, module: str = "classiformer") -> None:
    """Run ``python -m module argv...`` as ``nproc`` processes on this machine through torch's
    elastic launcher (what ``torchrun --standalone --nproc-per-node nproc`` does). When a process
    fails the launcher stops the others, and this raises :class:`DistributedError` naming the
    failed rank(s). SIGINT or SIGTERM here reaches every process, which stop at the same step with
    ``last/`` saved; this then raises :class:`~classiformer.training.TrainingInterrupted`."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    from .training import TrainingInterrupted

    if nproc < 1:
        raise ValueError(f"--nproc {nproc}: expected at least 1 process")
    config = LaunchConfig(
        min_nodes=1, max_nodes=1, nproc_per_node=nproc, run_id=str(uuid.uuid4()), rdzv_backend="c10d",
        rdzv_endpoint="localhost:0", max_restarts=0, monitor_interval=0.5,
    )
    log.info("starting %d processes (torch.distributed elastic launcher)", nproc)
    try:
        elastic_launch(config, entrypoint=sys.executable)("-m", module, *argv)
    except ChildFailedError as e:
        raise DistributedError(f"distributed training failed: {describe_failures(e)}") from None
    except SignalException as e:
        # The launcher passed the SIGINT/SIGTERM on to every process; each stopped at the same step
        # (they agree on it) and rank 0 saved last/ there, as its own message said.
        raise TrainingInterrupted(f"stopped by {signal.Signals(e.sigval).name}: the processes stopped at their next "
                                  "step with last/ saved; continue with --resume", int(e.sigval)) from None


def ray_train(
    config: Any,
    train: Any,
    run_dir: str | Path,
    num_workers: int = 2,
    validation: Any = None,
    use_gpu: bool = False,
    resume: bool = False,
    overwrite: bool = False,
    ray_address: str | None = None,
) -> Any:
    """Train with :func:`classiformer.training.fit` on ``num_workers`` Ray Train workers
    (``ray.train.torch.TorchTrainer`` with ``ScalingConfig(num_workers=N)``), which set up the
    process group (gloo, or NCCL with ``use_gpu``). ``run_dir`` must be visible to every worker
    (one machine, or a shared file system). ``train``/``validation`` are
    :class:`~classiformer.data.TextDataset` objects (shipped to the workers) or paths each worker
    reads. Returns the :class:`~classiformer.training.TrainResult` rank 0 wrote (:func:`run_result`). Needs the ``ray`` extra
    (``pip install 'classiformer[ray]'``); starts a local Ray cluster unless ``ray_address`` (or
    an initialised Ray) says where one runs."""
    try:
        import ray
        from ray.train import RunConfig as RayRunConfig
        from ray.train import ScalingConfig
        from ray.train.torch import TorchConfig, TorchTrainer
    except ImportError:
        raise ImportError("ray_train needs Ray Train: pip install 'classiformer[ray]'") from None

    if not ray.is_initialized():
        ray.init(address=ray_address, num_cpus=None if ray_address else max(num_workers, os.cpu_count() or 1),
                 include_dashboard=False)
    run_dir = Path(run_dir).resolve()
    loop_config = {"config": config, "train": train, "validation": validation, "run_dir": str(run_dir),
                   "resume": resume, "overwrite": overwrite}
    trainer = TorchTrainer(
        _ray_worker,
        train_loop_config=loop_config,
        scaling_config=ScalingConfig(num_workers=num_workers, use_gpu=use_gpu),
        torch_config=TorchConfig(backend="nccl" if use_gpu else "gloo", timeout_s=int(timeout_s())),
        run_config=RayRunConfig(name="ray", storage_path=str(run_dir / ".ray")),  # Ray's own records
    )
    result = trainer.fit()
    if result.error is not None:
        raise DistributedError(f"Ray Train failed: {result.error}")
    return run_result(run_dir)


def run_result(run_dir: str | Path) -> Any:
    """The :class:`~classiformer.training.TrainResult` of the run rank 0 wrote into ``run_dir``
    (its ``last/`` trainer state and the temperature stored in ``best/``)."""
    from .training import stored_result

    return stored_result(Path(run_dir))


def _ray_worker(cfg: dict[str, Any]) -> None:
    """One Ray Train worker: the same :func:`fit` as torchrun's processes, in Ray's process group."""
    import ray.train
    from ray.train.torch import get_device

    from .data import read_dataset
    from .training import fit

    def load(data: Any) -> Any:
        return read_dataset(data) if isinstance(data, str | Path) else data

    result = fit(cfg["config"], load(cfg["train"]), cfg["run_dir"], validation=load(cfg["validation"]),
                 device=str(get_device()), resume=cfg["resume"], overwrite=cfg["overwrite"], progress=False)
    ray.train.report({"best_epoch": result.best_epoch, "best_val_accuracy": result.best_val_accuracy,
                      "train_samples_per_sec": result.train_samples_per_sec})
