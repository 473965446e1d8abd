"""Run tracking: a training run reported to TensorBoard and/or MLflow, as ``--report-to`` asks.

Both backends are :class:`~classiformer.training.Callback` objects on the one training loop, and
use the libraries' own writers, nothing hand-written that they already do:

- TensorBoard (``torch.utils.tensorboard.SummaryWriter``): event files in ``RUN/tensorboard/``
  with the training loss and learning rate every logging step (``train/loss``, ``train/lr``), the
  validation metrics every epoch (``validation/accuracy``, ...), the test metrics (``test/...``)
  and the resolved config as hyperparameters (the HParams dashboard), whose metrics are the test
  metrics when there is a test set, else the best epoch's validation metrics.
- MLflow (``mlflow.MlflowClient``): one MLflow run per classiformer run, with the resolved config
  as params (``model.embed_dim``, ``train.lr``, ...), the same metrics with their steps, the plots
  and ``metrics.json`` as artifacts, and the run folder (without ``last/``, the optimizer's resume
  state) as the ``model`` artifact, which ``Classifier.load`` reads once downloaded. Without a
  tracking URI, MLflow's own default applies (``MLFLOW_TRACKING_URI``, else ``sqlite:///mlflow.db``
  in the working directory); the experiment is ``MLFLOW_EXPERIMENT_NAME`` or ``classiformer``. A
  resumed run (``--resume``) continues the same MLflow run: its id is kept in ``RUN/tracking.json``.

Metrics go to MLflow in batches (at each epoch's end, and at most every :data:`MLFLOW_FLUSH_SECONDS`):
one ``log_batch`` into the SQLite store takes tens of milliseconds, which every 20 steps would cost
several percent of a small model's training time. This mirrors the ``report_to`` of Hugging Face's
``Trainer`` (its ``TensorBoardCallback`` and ``MLflowCallback``).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from .checkpoint import atomic_write_text
from .config import ConfigError
from .training import CONFIG_FILE, Callback, Trainer, TrainResult, read_history

log = logging.getLogger(__name__)

BACKENDS = ("tensorboard", "mlflow")
EXTRA = "pip install 'classiformer[tracking]'"
TENSORBOARD_DIR = "tensorboard"
TRACKING_FILE = "tracking.json"  # the MLflow run a resumed run continues
MLFLOW_FLUSH_SECONDS = 30.0
# Folders of a run folder that the MLflow model artifact leaves out: the resume state (optimizer
# moments: twice the model's size), memory-mapped frozen-encoder features and TensorBoard's events.
NOT_MODEL = ("last", "feature_cache", TENSORBOARD_DIR, ".lock", TRACKING_FILE)


class TrackingError(ConfigError):
    """A tracking backend was asked for that is unknown or not installed."""


def parse_report_to(values: str | Iterable[str] | None) -> list[str]:
    """``--report-to`` values (each may list several, comma-separated; ``none`` for none) as a
    list of backend names, in order and without repeats."""
    if values is None:
        return []
    items = [values] if isinstance(values, str) else list(values)
    names: list[str] = []
    for item in items:
        for name in (n.strip().lower() for n in item.split(",")):
            if name and name != "none" and name not in BACKENDS:
                raise TrackingError(f"--report-to: unknown tracking backend {name!r}; choose none, "
                                    f"{', '.join(BACKENDS)} (several: comma-separated or repeated)")
            if name and name not in names:
                names.append(name)
    if "none" in names and len(names) > 1:
        raise TrackingError(f"--report-to: 'none' cannot be combined with {[n for n in names if n != 'none']}")
    return [n for n in names if n != "none"]


def _missing(backend: str, package: str, error: ImportError) -> TrackingError:
    return TrackingError(f"--report-to {backend} needs the {package!r} package, which is not installed ({error}); "
                         f"install it with: {EXTRA}")


def _flat_config(run_dir: Path) -> dict[str, Any]:
    """The run's resolved config (``config.json``) as flat ``section.key`` values."""
    config = json.loads((run_dir / CONFIG_FILE).read_text(encoding="utf-8"))
    flat: dict[str, Any] = {"family": config.get("family", "transformer"), "preset": config.get("preset")}
    for section in ("model", "tokenizer", "train"):
        for key, value in (config.get(section) or {}).items():
            flat[f"{section}.{key}"] = value
    return flat


def _numbers(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The scalar metrics of a report (per-class tables, matrices and names left out)."""
    return {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


class TensorBoardTracker(Callback):
    """Event files in ``RUN/tensorboard/`` (see the module docstring)."""

    def __init__(self) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as e:
            raise _missing("tensorboard", "tensorboard", e) from None
        self._writer_class = SummaryWriter
        self.writer: Any = None
        self.run_dir: Path | None = None
        self.step = 0
        self.best: dict[str, float] = {}
        self._select = "val_accuracy"
        self._hparams_written = False

    def on_train_begin(self, trainer: Trainer) -> None:
        self.close("FINISHED")  # a previous training of this tracker (another candidate student) ends first
        self.run_dir, self.step = trainer.run_dir, trainer.state.step
        self._select = trainer.select
        # On a resume, events a killed process wrote after the checkpoint it resumes from are dropped
        # (purge_step), so curves do not hold two values for one step.
        self.writer = self._writer_class(str(trainer.run_dir / TENSORBOARD_DIR), purge_step=self.step or None)
        if trainer.state.history:
            self.best = self._best(trainer.state.history)

    def _best(self, history: list[dict[str, Any]]) -> dict[str, Any]:
        return max(history, key=lambda r: r.get(self._select, -1.0))

    def on_log(self, step: int, logs: dict[str, float]) -> None:
        self.step = step
        self.writer.add_scalar("train/loss", logs["loss"], step)
        self.writer.add_scalar("train/lr", logs["lr"], step)

    def on_epoch_end(self, epoch: int, record: dict[str, Any]) -> None:
        self.step = int(record["step"])
        for key, value in _numbers(record).items():
            if key.startswith("val_"):
                self.writer.add_scalar(f"validation/{key[4:]}", value, self.step)
        self.writer.add_scalar("train/epoch_loss", record["train_loss"], self.step)
        self.writer.add_scalar("train/epoch", epoch, self.step)
        if not self.best or record.get(self._select, -1.0) > self.best.get(self._select, -1.0):
            self.best = _numbers(record)
        self.writer.flush()

    def follow(self, run_dir: Path) -> None:
        """Go on in ``run_dir``, where a finished run was moved (``distill.distill_students``): the
        test set's events and hyperparameters are written there, as the run's own."""
        self.close("FINISHED")
        history = read_history(run_dir)
        self.run_dir, self.step = run_dir, int(history[-1]["step"]) if history else 0
        self.best = self._best(history) if history else {}
        self._hparams_written = False
        self.writer = self._writer_class(str(run_dir / TENSORBOARD_DIR))

    def log_test(self, metrics: Mapping[str, Any], files: Mapping[str, Path]) -> None:
        for key, value in _numbers(metrics).items():
            self.writer.add_scalar(f"test/{key}", value, self.step)
        self._hparams({f"test/{k}": v for k, v in _numbers(metrics).items()})

    def _hparams(self, metrics: dict[str, float]) -> None:
        from torch.utils.tensorboard.summary import hparams

        assert self.run_dir is not None
        values = {k: v for k, v in _flat_config(self.run_dir).items() if isinstance(v, (bool, int, float, str))}
        # In this run's own event file (SummaryWriter.add_hparams would start another run in a
        # sub-folder), so TensorBoard shows one run with its hyperparameters and metrics.
        for summary in hparams(values, metrics):
            self.writer.file_writer.add_summary(summary)
        self._hparams_written = True

    def close(self, status: str) -> None:
        if self.writer is None:
            return
        if not self._hparams_written and self.best:
            self._hparams({f"validation/{k[4:]}": v for k, v in self.best.items() if k.startswith("val_")})
        self.writer.close()
        self.writer = None


class MlflowTracker(Callback):
    """One MLflow run per classiformer run (see the module docstring)."""

    def __init__(self, tracking_uri: str | None = None, experiment: str | None = None, run_name: str | None = None,
                 tags: Mapping[str, str] | None = None) -> None:
        try:
            from mlflow import MlflowClient
            from mlflow.entities import Metric, Param
        except ImportError as e:
            raise _missing("mlflow", "mlflow", e) from None
        self._metric, self._param = Metric, Param
        self.client = MlflowClient(tracking_uri)  # None: MLflow's default (MLFLOW_TRACKING_URI, ./mlflow.db)
        self.experiment = experiment or os.environ.get("MLFLOW_EXPERIMENT_NAME") or "classiformer"
        self.run_name = run_name
        self.tags = dict(tags or {})
        self.run_id: str | None = None
        self.run_dir: Path | None = None
        self._pending: list[Any] = []
        self._flushed_at = time.monotonic()
        self.step = 0

    @property
    def tracking_uri(self) -> str:
        return str(self.client.tracking_uri)

    def _experiment_id(self) -> str:
        found = self.client.get_experiment_by_name(self.experiment)
        if found is not None:
            return str(found.experiment_id)
        try:
            return str(self.client.create_experiment(self.experiment))
        except Exception:  # another process created it in between (parallel tuning workers)
            found = self.client.get_experiment_by_name(self.experiment)
            if found is None:
                raise
            return str(found.experiment_id)

    def _previous_run(self, run_dir: Path) -> str | None:
        """The MLflow run that an earlier process of this run folder reported to, in this store."""
        path = run_dir / TRACKING_FILE
        try:
            stored = json.loads(path.read_text(encoding="utf-8")).get("mlflow") or {}
        except (FileNotFoundError, json.JSONDecodeError, AttributeError):
            return None
        if stored.get("tracking_uri") != self.tracking_uri or not stored.get("run_id"):
            return None
        try:
            run = self.client.get_run(stored["run_id"])
        except Exception:  # deleted, or the store was replaced
            return None
        return None if run.info.lifecycle_stage == "deleted" else str(stored["run_id"])

    def on_train_begin(self, trainer: Trainer) -> None:
        self.close("FINISHED")  # a previous training of this tracker (another candidate student) ends first
        self.run_dir, self.step = trainer.run_dir, trainer.state.step
        previous = self._previous_run(trainer.run_dir) if trainer.state.step else None
        if previous is not None:
            self.run_id = previous
            self.client.update_run(previous, status="RUNNING")
            log.info("mlflow: continuing run %s in %s", previous, self.tracking_uri)
        else:
            tags = {"classiformer.run_dir": str(trainer.run_dir.resolve()), **self.tags}
            run = self.client.create_run(self._experiment_id(), run_name=self.run_name or trainer.run_dir.name, tags=tags)
            self.run_id = run.info.run_id
            log.info("mlflow: run %s (experiment %r) in %s", self.run_id, self.experiment, self.tracking_uri)
        atomic_write_text(trainer.run_dir / TRACKING_FILE, json.dumps(
            {"mlflow": {"tracking_uri": self.tracking_uri, "run_id": self.run_id, "experiment": self.experiment}},
            indent=2))
        logged = self.client.get_run(self.run_id).data.params
        params = [self._param(k, str(v)[:6000]) for k, v in _flat_config(trainer.run_dir).items()]
        # A param cannot change in MLflow; a resumed run may change only epochs, patience and
        # checkpoint_every, which keep their first values there (config.json has the current ones).
        fresh = [p for p in params if p.key not in logged]
        for start in range(0, len(fresh), 100):  # log_batch takes at most 100 params
            self.client.log_batch(self.run_id, params=fresh[start:start + 100])

    def _add(self, metrics: Mapping[str, float], step: int) -> None:
        self.step = step
        now = int(time.time() * 1000)
        self._pending.extend(self._metric(key, float(value), now, step) for key, value in metrics.items())

    def _flush(self) -> None:
        assert self.run_id is not None
        while self._pending:  # log_batch takes at most 1000 metrics
            batch, self._pending = self._pending[:1000], self._pending[1000:]
            self.client.log_batch(self.run_id, metrics=batch)
        self._flushed_at = time.monotonic()

    def on_log(self, step: int, logs: dict[str, float]) -> None:
        self._add({"train_loss": logs["loss"], "lr": logs["lr"]}, step)
        if time.monotonic() - self._flushed_at > MLFLOW_FLUSH_SECONDS:
            self._flush()

    def on_epoch_end(self, epoch: int, record: dict[str, Any]) -> None:
        metrics = {k: v for k, v in _numbers(record).items() if k.startswith("val_")}
        metrics.update({"epoch": float(epoch), "epoch_train_loss": record["train_loss"]})
        self._add(metrics, int(record["step"]))
        self._flush()

    def follow(self, run_dir: Path) -> None:
        """Go on with the MLflow run of ``run_dir``, where a finished run was moved
        (``distill.distill_students``): the test set's metrics and the model are logged to it."""
        kept = self._previous_run(run_dir)
        if kept is None or kept == self.run_id:
            self.run_dir = run_dir
            return
        self.close("FINISHED")
        history = read_history(run_dir)
        self.run_id, self.run_dir = kept, run_dir
        self.step = int(history[-1]["step"]) if history else 0
        self.client.update_run(kept, status="RUNNING")

    def log_test(self, metrics: Mapping[str, Any], files: Mapping[str, Path]) -> None:
        self._add({f"test_{k}": v for k, v in _numbers(metrics).items()}, self.step)
        self._flush()
        assert self.run_id is not None
        for path in files.values():
            self.client.log_artifact(self.run_id, str(path))

    def _log_model(self) -> None:
        assert self.run_id is not None and self.run_dir is not None
        if not (self.run_dir / "best").exists():
            return
        for item in sorted(self.run_dir.iterdir()):
            if item.name in NOT_MODEL or item.name.startswith("."):
                continue
            if item.is_dir():
                self.client.log_artifacts(self.run_id, str(item), artifact_path=f"model/{item.name}")
            else:
                self.client.log_artifact(self.run_id, str(item), artifact_path="model")

    def close(self, status: str) -> None:
        if self.run_id is None:
            return
        try:
            self._flush()
            if status == "FINISHED":
                self._log_model()
        finally:
            self.client.set_terminated(self.run_id, status=status)
            self.run_id = None


class Tracker(Callback):
    """The run's tracking backends as one :class:`~classiformer.training.Callback`: pass it in
    ``fit(callbacks=[...])``, call :meth:`log_test` after evaluating on the test set, and
    :meth:`close` at the end (or use it as a context manager: an exception closes the MLflow run
    as ``KILLED`` for an interruption, ``FAILED`` otherwise)."""

    def __init__(self, backends: Sequence[Any]) -> None:
        self.backends = list(backends)

    def __bool__(self) -> bool:
        return bool(self.backends)

    def on_train_begin(self, trainer: Trainer) -> None:
        for b in self.backends:
            b.on_train_begin(trainer)

    def on_log(self, step: int, logs: dict[str, float]) -> None:
        for b in self.backends:
            b.on_log(step, logs)

    def on_epoch_end(self, epoch: int, record: dict[str, Any]) -> None:
        for b in self.backends:
            b.on_epoch_end(epoch, record)

    def on_train_end(self, result: TrainResult) -> None:
        for b in self.backends:
            b.on_train_end(result)

    def follow(self, run_dir: Path) -> None:
        """After several trainings (``distill.distill_students``' candidates), go on with the one
        that was kept and moved to ``run_dir``: the others' runs are ended, the test set and the
        model are logged to its run."""
        for b in self.backends:
            b.follow(run_dir)

    def log_test(self, metrics: Mapping[str, Any], files: Mapping[str, Path] | None = None) -> None:
        """The test set's metrics (the scalar ones) and files (plots, ``metrics.json``), as
        :func:`~classiformer.evaluate.write_evaluation` returns them."""
        for b in self.backends:
            b.log_test(metrics, files or {})

    def close(self, status: str = "FINISHED") -> None:
        """End every backend's run with MLflow's ``status`` (FINISHED, FAILED or KILLED)."""
        errors = []
        for b in self.backends:
            try:
                b.close(status)
            except Exception as e:  # close the others anyway
                errors.append(e)
        if errors:
            raise errors[0]

    def __enter__(self) -> Tracker:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if kind is None:
            self.close("FINISHED")
        else:
            try:
                self.close("KILLED" if issubclass(kind, KeyboardInterrupt) else "FAILED")
            except Exception:  # the training error is the one to see
                log.exception("closing the tracking runs failed")


def start_tracking(report_to: str | Iterable[str] | None, tracking_uri: str | None = None,
                   experiment: str | None = None, run_name: str | None = None,
                   tags: Mapping[str, str] | None = None) -> Tracker:
    """A :class:`Tracker` for the ``--report-to`` backends (see :func:`parse_report_to`). Each
    backend's library is imported here, before any training, so a missing one fails at once with
    the extra to install. ``tracking_uri``, ``experiment``, ``run_name`` and ``tags`` are MLflow's.
    The runs themselves open when training begins (the run folder and its config known)."""
    names = parse_report_to(report_to)
    if tracking_uri and "mlflow" not in names:
        raise TrackingError("--tracking-uri is MLflow's; add --report-to mlflow")
    backends: list[Any] = []
    for name in names:
        if name == "tensorboard":
            backends.append(TensorBoardTracker())
        else:
            backends.append(MlflowTracker(tracking_uri, experiment, run_name, tags))
    return Tracker(backends)
