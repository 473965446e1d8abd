"""The training loop shared by every model family.

AdamW (weight decay only on matrices, as in nanoGPT), a constant or linear-warmup-then-decay
schedule, gradient clipping and accumulation, length-bucketed dynamic padding, validation every
epoch, early stopping, ``best`` and ``last`` checkpoints, and exact resumption: the ``last``
checkpoint holds the optimizer, scheduler and RNG state and the position inside the epoch, so a
run stopped by Ctrl-C or a kill continues with ``resume=True`` as if it had never stopped.

While training runs, SIGINT (Ctrl-C) and SIGTERM (a scheduler, ``timeout``, ``docker stop``) only
ask for a stop, which happens at the next safe point: after a whole optimizer step with its
bookkeeping, or after an epoch's validation and checkpoints. There ``last/`` is saved and
:class:`TrainingInterrupted` is raised. A signal acted on at once could land between the
optimizer step and the step counter (resume would apply a batch twice) or while ``best/`` is
written (the history would hold the epoch twice). A second signal stops at once, without saving:
checkpoints are written atomically, so ``last/`` then holds the previous safe point. This is the
"Ctrl-C stops cleanly" habit of pytorch/examples' word_language_model, made exact.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from . import distributed
from .checkpoint import (
    MULTI_LABEL,
    SINGLE_LABEL,
    CheckpointError,
    CheckpointMeta,
    atomic_write_text,
    load_checkpoint,
    load_trainer_state,
    read_meta,
    recover_leftovers,
    save_checkpoint,
)
from .config import ConfigError, RunConfig, TrainConfig
from .data.batching import EncodedDataset, batch_of, bucketed_batches, sorted_batches
from .data.datasets import DataError, TextDataset, check_labels_known, encode_labels, stratified_split
from .data.overlap import warn_overlap
from .data.streaming import StreamFeed, TextStream
from .data.validation_sample import VALIDATION_FILE, validation_sample
from .inference import batch_tokens, logits_for, sigmoid
from .losses import Loss, bce_with_logits, class_weights, pos_weights, prior_logits
from .metrics import (
    classification_report,
    label_ranking_average_precision,
    precision_recall_f1,
    subset_accuracy,
)
from .models import FAMILIES, build_model
from .recipe import DataStats, adapt, applies, counts_words
from .runtime import (
    amp_dtype,
    autocast,
    bf16_worthwhile,
    limit_onednn_cache,
    pad_multiple,
    release_free_memory,
    resolve_device,
    seed_everything,
)
from .thresholds import tune_thresholds
from .tokenizers import Tokenizer, train_tokenizer

log = logging.getLogger(__name__)

CONFIG_FILE = "config.json"
HISTORY_FILE = "metrics.jsonl"
LOG_EVERY = 20  # optimizer steps between training-loss logs (the progress bar and Callback.on_log)


@dataclass
class TrainResult:
    run_dir: Path
    history: list[dict[str, Any]]
    best_epoch: int
    best_val_accuracy: float
    train_samples_per_sec: float
    stopped_early: bool = False
    temperature: float = 1.0  # fitted on the validation split (temperature scaling)
    already_complete: bool = False  # resume found nothing left to train

    @property
    def best_dir(self) -> Path:
        return self.run_dir / "best"

    @property
    def last_dir(self) -> Path:
        return self.run_dir / "last"


class Callback:
    """Hooks into :class:`Trainer`'s loop, for what watches a run without changing how it trains:
    run tracking (``tracking.py``: TensorBoard, MLflow), Optuna's pruning (``tuning.py``). Every
    method does nothing unless overridden; the loop calls them in the order the callbacks were
    given. Like Keras' ``Callback`` and Hugging Face's ``TrainerCallback``, cut to what is used."""

    def on_train_begin(self, trainer: Trainer) -> None:
        """Before the first step (of this process: after a resume, at the restored position);
        ``trainer.run_dir``, ``trainer.meta`` (model settings, labels), ``trainer.cfg`` and
        ``trainer.state.step`` describe the run."""

    def on_log(self, step: int, logs: dict[str, float]) -> None:
        """Every :data:`LOG_EVERY` optimizer steps: ``loss`` (the mean training loss of the
        examples since the previous log) and ``lr`` (the first parameter group's rate)."""

    def on_epoch_end(self, epoch: int, record: dict[str, Any]) -> None:
        """After epoch ``epoch`` (1-based) is validated and checkpointed (``last/`` holds this
        point, so the run resumes from here): ``record`` is its line of ``metrics.jsonl``
        (``train_loss``, ``val_*``, ``lr``, ...). An exception raised here (Optuna's
        ``TrialPruned``) ends training and propagates out of :func:`fit`."""

    def on_train_end(self, result: TrainResult) -> None:
        """After the last epoch, when training ended normally (not interrupted, not raised)."""


class TrainingInterrupted(KeyboardInterrupt):
    """Training was stopped by signal ``signum`` (SIGINT or SIGTERM). With ``saved``, ``last/``
    holds the moment of stopping; without (a second signal stopped at once), the previous safe
    point. Either way ``resume=True`` continues exactly. A ``KeyboardInterrupt``, so code that
    handles Ctrl-C handles this too."""

    def __init__(self, message: str, signum: int, saved: bool = True) -> None:
        super().__init__(message)
        self.signum = signum
        self.saved = saved


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


class StopSignals:
    """While active, SIGINT and SIGTERM only note that a stop was asked for (``signum``), for the
    training loop to act on at its next safe point; a second signal raises
    :class:`TrainingInterrupted` at once. The previous handlers come back on exit. Handlers can
    only be set in the main thread (where Python runs them); elsewhere this does nothing.
    Re-entrant: nested uses share one set of handlers."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.signum: int | None = None
        self._depth = 0
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopSignals:
        if self._depth == 0 and threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self._previous[sig] = signal.signal(sig, self._note)
        self._depth += 1
        return self

    def __exit__(self, *exc: object) -> None:
        self._depth -= 1
        if self._depth == 0:
            for sig, handler in self._previous.items():
                # None: a handler not set from Python, which cannot be put back; the default is closest
                signal.signal(sig, signal.SIG_DFL if handler is None else handler)
            self._previous.clear()

    def _note(self, signum: int, frame: object) -> None:
        # Nothing else here, logging included: this runs between any two bytecodes of the loop,
        # possibly inside a write to the same stream.
        if self.signum is not None:
            raise TrainingInterrupted(
                f"stopped at once by a second {_signal_name(signum)}: last/ holds the last safe point "
                "(work since then is lost); continue with resume=True (--resume)",
                signum, saved=False,
            )
        self.signum = signum


@dataclass
class _State:
    """Everything that must survive an interruption, besides weights and optimizer."""

    epoch: int = 0  # current epoch (0-based)
    batches_done: int = 0  # batches of the current epoch already applied
    step: int = 0  # optimizer steps so far
    best_val: float = -math.inf
    best_epoch: int = -1
    bad_epochs: int = 0
    epoch_loss: float = 0.0
    epoch_samples: int = 0
    train_seconds: float = 0.0
    samples_seen: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    stopped_early: bool = False
    world_size: int = 1  # processes that trained up to here (batches_done counts all ranks' batches)
    # The processes the current epoch's batch order was made for (bucketed_batches's group): a run
    # resumed mid-epoch on another number of processes finishes the epoch in the same order.
    epoch_group: int = 1


class _LossLog:
    """Per-batch training losses, kept on the device until read: ``loss.item()`` after every batch
    would make the host wait for the GPU each step. ``flush`` adds them to the state in batch order,
    so the running sums are the same floats as adding each batch's loss at once."""

    def __init__(self, state: _State) -> None:
        self.state = state
        self.pending: list[tuple[torch.Tensor, int]] = []

    def add(self, loss: torch.Tensor, n: int) -> None:
        self.pending.append((loss.detach(), n))

    def flush(self) -> None:
        if distributed.active():  # every rank flushes at the same step: the sums cover all ranks
            values = torch.stack([v for v, _ in self.pending]).tolist() if self.pending else []
            loss, n = distributed.all_sum([sum(v * n for v, (_, n) in zip(values, self.pending)),
                                           sum(n for _, n in self.pending)])
            self.state.epoch_loss += loss
            self.state.epoch_samples += int(n)
            self.pending.clear()
            return
        if not self.pending:
            return
        values = torch.stack([v for v, _ in self.pending]).tolist()
        for value, (_, n) in zip(values, self.pending):
            self.state.epoch_loss += value * n
            self.state.epoch_samples += n
        self.pending.clear()


def param_groups(model: nn.Module, weight_decay: float, lr: float, layer_decay: float = 1.0,
                 head_lr: float = 0.0) -> list[dict[str, Any]]:
    """Decay matrices (weights of linear and embedding layers); never biases or norms. With
    ``layer_decay`` below 1, a parameter at depth d of a model whose top is depth D (see
    ``PretrainedClassifier.parameter_depths``) learns at ``lr * layer_decay ** (D - d)``:
    layer-wise learning-rate decay (Howard and Ruder, 2018; Clark et al., 2020), the top first.
    With ``head_lr``, the model's ``head_parameters()`` (the freshly drawn output layers) learn at
    that rate instead: a new classifier on a pretrained body starts from nothing and, at a
    fine-tuning rate, moves too little for labels seen in a handful of steps (the separate head
    rate of SetFit, Tunstall et al., 2022)."""
    depths: dict[int, int] = {}
    top = 0
    if layer_decay != 1.0:
        get = getattr(model, "parameter_depths", None)
        if get is None:
            raise ConfigError(f"layer_decay needs a pretrained encoder; {type(model).__name__} has no layer depths")
        depths, top = get()
    head: set[int] = set()
    if head_lr:
        get_head = getattr(model, "head_parameters", None)
        if get_head is None:
            raise ConfigError(f"head_lr: {type(model).__name__} does not say which parameters are its head")
        head = {id(p) for p in get_head()}
    # Keyed by (is head, depth, is a matrix); the head sorts last, so group 0 keeps ``lr`` (logged).
    groups: dict[tuple[bool, int, bool], list[nn.Parameter]] = {}
    for p in model.parameters():
        if p.requires_grad:
            groups.setdefault((id(p) in head, depths.get(id(p), top), p.dim() >= 2), []).append(p)
    return [
        {"params": params, "weight_decay": weight_decay if decay else 0.0,
         "lr": head_lr if is_head else lr * layer_decay ** (top - depth)}
        for (is_head, depth, decay), params in sorted(groups.items(), key=lambda kv: (kv[0][0], -kv[0][1], not kv[0][2]))
    ]


def lr_lambda(schedule: str, warmup_steps: int, total_steps: int) -> Callable[[int], float]:
    def f(step: int) -> float:
        if schedule == "constant":
            return 1.0
        if step < warmup_steps:
            return (step + 1) / max(1, warmup_steps)
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))

    return f


def encode(tokenizer: Tokenizer, dataset: TextDataset, labels: list[str] | None) -> EncodedDataset:
    ids = tokenizer.encode(dataset.texts)
    return EncodedDataset(ids, encode_labels(dataset, labels) if labels is not None else None)


class Trainer:
    """Trains ``model`` on encoded data; see module docstring. Use :func:`fit` for the whole job."""

    def __init__(
        self,
        model: nn.Module,
        tokenizer: Tokenizer,
        meta: CheckpointMeta,
        config: TrainConfig,
        run_dir: Path,
        device: torch.device,
        progress: bool = True,
        on_step: Callable[[int], None] | None = None,
        loss: Loss | None = None,
        signals: StopSignals | None = None,
        callbacks: Sequence[Callback] = (),
    ) -> None:
        self.model = model.to(device)
        # In a process group, the steps run through DistributedDataParallel (gradients averaged
        # over ranks); validation and the feature cache use the model itself. One process: the same.
        self.ddp = distributed.wrap(self.model, device)
        self.tokenizer = tokenizer
        self.meta = meta
        self.cfg = config
        self.run_dir = Path(run_dir)
        self.device = device
        self.progress = progress and distributed.is_main()
        # Called with the optimizer step count after each whole step; raising KeyboardInterrupt
        # there stops the run at that step as a signal would (tests use it to interrupt).
        self.on_step = on_step
        self.signals = signals or StopSignals()
        self.callbacks = list(callbacks) if distributed.is_main() else []  # tracking writes once
        # Softmax cross-entropy (class-weighted if asked) or, for multi-label models, sigmoid BCE
        # (or the hinge loss, train.multilabel_loss).
        self.loss = (loss or Loss(multi_label=meta.multi_label, label_smoothing=config.label_smoothing,
                                  hinge_margin=hinge_margin(config, meta.multi_label))).to(device)
        if self.loss.multi_label != meta.multi_label:
            raise ConfigError(f"a {'multi' if self.loss.multi_label else 'single'}-label loss for a {meta.problem_type} model")
        # The validation metric that picks the best epoch (and stops early).
        self.select = monitored(config.monitor, meta.multi_label)
        # The fused kernel updates every parameter in one pass (about 6% of a lesson training step on a CPU).
        fused = device.type in ("cpu", "cuda")
        self.optimizer = torch.optim.AdamW(
            param_groups(model, config.weight_decay, config.lr, config.layer_decay, config.head_lr),
            lr=config.lr, fused=fused
        )
        # bf16 on a CPU without bf16 matrix units is slower than fp32: runtime falls back (and warns).
        self.amp = amp_dtype(config.bf16 and bf16_worthwhile(device), config.fp16)
        # float16's narrow range needs the loss scaled up (and steps with overflowed gradients
        # skipped); bfloat16 and float32 do not: a disabled scaler passes everything through.
        self.scaler = torch.amp.GradScaler(device.type, enabled=config.fp16)
        self.state = _State()
        self.scheduler: torch.optim.lr_scheduler.LambdaLR | None = None
        self._saved_at: tuple[int, int, int] | None = None  # (epoch, batches_done, step) of last/
        self.feed: StreamFeed | None = None  # set while training on a stream
        self._stream_at: dict[str, Any] | None = None  # its position as of the last save_last

    # -- checkpointing --------------------------------------------------------------------------

    def _trainer_state(self, rng: torch.Tensor) -> dict[str, Any]:
        s = self.state
        assert self.scheduler is not None
        return {
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": rng,
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "progress": {k: v for k, v in s.__dict__.items() if k != "history"},
            "history": json.dumps(s.history),
            # Streaming: where each shard of the stream stands (data/streaming.py)
            **({"stream": json.dumps(self._stream_at)} if self._stream_at is not None else {}),
        }

    def _position(self) -> tuple[int, int, int]:
        s = self.state
        return s.epoch, s.batches_done, s.step

    def save_last(self, rng: torch.Tensor) -> None:
        self.state.world_size = distributed.world_size()
        if self.feed is not None:
            self._stream_at = self.feed.position()
            if distributed.active():  # every rank saves at the same step: rank 0 keeps every rank's shards
                parts = distributed.all_gather_object(self._stream_at["shards"])
                self._stream_at["shards"] = {k: v for part in parts for k, v in part.items()}
        if distributed.is_main():
            save_checkpoint(self.run_dir / "last", self.model, self.tokenizer, self.meta, self._trainer_state(rng))
        self._saved_at = self._position()

    def restore(self, folder: Path) -> None:
        state = load_trainer_state(folder)
        self.optimizer.load_state_dict(state["optimizer"])
        assert self.scheduler is not None
        self.scheduler.load_state_dict(state["scheduler"])
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["rng"])
        if state.get("cuda_rng") and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        self.state = _State(**state["progress"], history=json.loads(state["history"]))
        if self.feed is not None:
            if "stream" not in state:
                raise CheckpointError(f"{folder}: the run was not trained on a stream; resume it without streaming")
            self.feed.restore(json.loads(state["stream"]))
        self._saved_at = self._position()

    def _stop_if_asked(self, rng: torch.Tensor, losses: _LossLog | None = None, t0: float | None = None) -> None:
        """At a safe point: when a stop was asked for (on any rank), save ``last/`` and raise."""
        signum = distributed.agree_signal(self.signals.signum)
        if signum is None:
            # Not ``self.signals.signum = signum``: a signal that arrived during the exchange (the
            # handler runs while the all-reduce waits for the peer) would be erased on every rank
            # at once, as each is told "no rank asked"; it stays noted for the next safe point.
            return
        self.signals.signum = signum
        s = self.state
        if losses is not None:
            losses.flush()
        if t0 is not None:
            s.train_seconds += time.perf_counter() - t0
        if self._saved_at != self._position():
            self.save_last(rng)
        message = (
            f"stopped by {_signal_name(signum)} at epoch {s.epoch + 1}, step {s.step}: "
            f"{self.run_dir / 'last'} holds this point; continue with resume=True (--resume)"
        )
        if distributed.is_main():
            log.warning("%s", message)
        raise TrainingInterrupted(message, signum)

    # -- the loop -------------------------------------------------------------------------------

    def validate(self, data: EncodedDataset) -> dict[str, float]:
        # Each rank computes its share of the batches one process would; joined, the same logits.
        logits = distributed.gather_rows(logits_for(
            self.model, data, self.tokenizer.pad_id, self.cfg.eval_batch_size, self.device, dtype=self.amp,
            cache_key="val", part=(distributed.rank(), distributed.world_size()),
        ))
        assert data.labels is not None
        if self.meta.multi_label:
            return multilabel_validation(logits, data.labels)
        loss = float(F.cross_entropy(torch.from_numpy(logits), torch.from_numpy(data.labels)))
        report = classification_report(data.labels, logits.argmax(1), self.meta.labels)
        return {"val_loss": loss, "val_accuracy": report["accuracy"], "val_macro_f1": report["macro_f1"]}

    def _fill_feature_cache(self, data: EncodedDataset, key: str, rng: torch.Tensor) -> None:
        """Compute the cached features of every example of ``data`` now, in length-sorted batches
        fixed by the data. Filled lazily, an example's features would come from the first training
        batch that held it, and a resumed run (whose cache starts empty) would compute them in other
        batches, of other shapes, whose matrix products round differently (by ~1e-8): every later
        step would differ from the uninterrupted run's."""
        multiple, limit = pad_multiple(self.device), int(data.lengths.max(initial=0))
        batches = sorted_batches(data.lengths, self.cfg.eval_batch_size, batch_tokens(self.model, self.device))
        # In a process group each rank computes a share of these batches, then all share the rows.
        mine = distributed.shard(len(batches), 0, distributed.rank(), distributed.world_size())
        unlabelled = EncodedDataset(data.ids)
        self.model.eval()
        try:
            for g in tqdm(mine, desc=f"{key} features", unit="batch", disable=not self.progress, leave=False):
                self._stop_if_asked(rng)  # on every rank at every slot, padding included
                if g >= len(batches):
                    continue
                idx = batches[g]
                batch = batch_of(unlabelled, idx, self.tokenizer.pad_id, multiple, limit)
                with torch.inference_mode(), autocast(self.device, self.amp):
                    self.model(
                        input_ids=batch["input_ids"].to(self.device), attention_mask=batch["attention_mask"].to(self.device),
                        index=batch["index"], cache_key=key,
                    )
            get_cache = getattr(self.model, "feature_cache", None)
            cache = get_cache(key) if get_cache is not None and distributed.active() else None
            if cache is not None:
                for rows in distributed.all_gather_object(cache.computed()):
                    cache.put(*rows)
        finally:
            self.model.train()

    def train(
        self, train: EncodedDataset | StreamFeed, val: EncodedDataset, resume_from: Path | None = None
    ) -> TrainResult:
        """Train to ``config.epochs`` (from ``resume_from``'s trainer state, when given); on a
        stream (:class:`~classiformer.data.streaming.StreamFeed`), for its ``max_steps`` in rounds
        of ``eval_every`` steps, each an "epoch" here. Raises :class:`TrainingInterrupted` when
        SIGINT or SIGTERM stopped it (see the module docstring)."""
        with self.signals:
            result = self._train(train, val, resume_from)
        for callback in self.callbacks:
            callback.on_train_end(result)
        return result

    def _train(self, train: EncodedDataset | StreamFeed, val: EncodedDataset, resume_from: Path | None) -> TrainResult:
        cfg, s = self.cfg, self.state
        self.feed = feed = train if isinstance(train, StreamFeed) else None
        world, rank = distributed.world_size(), distributed.rank()
        if isinstance(train, EncodedDataset):
            assert train.labels is not None
            lengths = train.lengths
            epochs = cfg.epochs
            n_batches = math.ceil(len(train) / cfg.batch_size)
            # Each step takes one batch per rank (per accumulated micro-step) from the epoch's batches.
            steps_per_epoch = math.ceil(math.ceil(n_batches / world) / cfg.grad_accum)
            total = steps_per_epoch * cfg.epochs
        else:  # a stream: every rank reads its own shards, one batch per micro-step (data/streaming.py)
            epochs, total = train.epochs, train.max_steps
        schedule = lr_lambda(cfg.schedule, int(cfg.warmup * total), total)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, schedule)
        if resume_from is not None:
            self.restore(resume_from)
            s = self.state
            # The schedule follows this run's epochs and number of processes, which a resume may have
            # changed: the steps done plus the steps left (the same total when nothing changed), and
            # the next step uses the rate planned for it.
            if isinstance(train, EncodedDataset):
                left = math.ceil(math.ceil(max(0, n_batches - s.batches_done) / world) / cfg.grad_accum)
                total = s.step + left + max(0, cfg.epochs - s.epoch - 1) * steps_per_epoch
            schedule = lr_lambda(cfg.schedule, int(cfg.warmup * total), total)
            self.scheduler.lr_lambdas = [schedule] * len(self.optimizer.param_groups)
            for group, base in zip(self.optimizer.param_groups, self.scheduler.base_lrs):
                group["lr"] = base * schedule(self.scheduler.last_epoch)
            if s.stopped_early and not (cfg.patience and s.bad_epochs >= cfg.patience):
                s.stopped_early = False  # more patience was given
            log.info("resuming at epoch %d, batch %d (step %d)%s", s.epoch + 1, s.batches_done, s.step,
                     f"; saved by {s.world_size} process(es), continued by {world}" if s.world_size != world else "")
        else:
            seed_everything(cfg.seed)
        if world > 1:
            # The same weights everywhere (DDP broadcast rank 0's), but each rank its own dropout.
            torch.manual_seed(cfg.seed * 1_000_003 + s.step * 1009 + rank)
            log.info("%d processes: batches of %d per process, an effective batch of %d examples per step "
                     "(x %d accumulation); lr %g (not scaled with the number of processes)", world,
                     cfg.batch_size, cfg.batch_size * world * cfg.grad_accum, cfg.grad_accum, cfg.lr)
        rng_at_step = torch.get_rng_state()  # the state of the RNG as of the last whole step
        # Models that cache per-example work (a frozen encoder's features) get one cache per set.
        prepare = getattr(self.model, "prepare_feature_cache", None)
        clear = getattr(self.model, "clear_feature_cache", None)
        try:
            if prepare is not None and isinstance(train, EncodedDataset):  # a stream's features are not cached
                folder = self.run_dir / "feature_cache" / (f"rank{rank}" if world > 1 else "")
                prepare("train", len(train), folder)
                prepare("val", len(val), folder)
                if getattr(self.model, "caches_features", False):
                    self._fill_feature_cache(train, "train", rng_at_step)
            self.model.train()
            if isinstance(train, EncodedDataset):
                multiple, limit = pad_multiple(self.device), int(lengths.max(initial=0))
            for callback in self.callbacks:
                callback.on_train_begin(self)
            while s.epoch < epochs and not s.stopped_early:
                self._stop_if_asked(rng_at_step)  # before the first step, or after an epoch's bookkeeping
                if isinstance(train, EncodedDataset):
                    if s.batches_done == 0:
                        s.epoch_group = world  # each step's batches of similar lengths: no rank waits long
                    batches = bucketed_batches(lengths, cfg.batch_size, cfg.seed, s.epoch, group=s.epoch_group)
                    start = s.batches_done  # global: batches of all ranks, whatever their number was
                    mine = distributed.shard(len(batches), start, rank, world)
                    weights = distributed.slot_weights([len(x) for x in batches], start, rank, world)
                    n_total = len(batches)
                else:  # the round's slots not done yet; every rank takes as many
                    n_total = train.batches_in(s.epoch)
                    mine = list(range(s.batches_done, n_total))
                    weights = [1.0] * len(mine)
                bar = tqdm(
                    total=n_total, initial=s.batches_done, desc=f"epoch {s.epoch + 1}/{epochs}",
                    unit="batch", disable=not self.progress, leave=False,
                )
                t0 = time.perf_counter()
                pending = 0
                losses = _LossLog(s)
                logged = (s.epoch_loss, s.epoch_samples)  # the sums at the previous on_log
                for slot, b in enumerate(mine):
                    if isinstance(train, EncodedDataset):
                        real = b < len(batches)  # else padding: a batch weighed 0, so ranks take equal steps
                        idx = batches[b % len(batches)]
                        batch = batch_of(train, idx, self.tokenizer.pad_id, multiple, limit)
                    else:
                        real, batch = True, train.next_batch()
                    batch = {k: v.to(self.device) for k, v in batch.items()}
                    labels = batch.pop("labels")  # the loss is computed here (weights, multi-label), not by the model
                    last = pending + 1 == cfg.grad_accum or slot == len(mine) - 1
                    # Gradients are averaged over ranks only at a step's last micro-batch.
                    with contextlib.nullcontext() if last else distributed.no_sync(self.ddp):
                        with autocast(self.device, self.amp):
                            out = self.ddp(**batch)
                        loss = self.loss(out.logits.float(), labels, batch.get("index"))  # (streamed batches have none)
                        objective = loss  # what is logged is the model's own loss, without the auxiliary ones
                        for weight, aux in out.aux_logits:
                            objective = objective + weight * self.loss(aux.float(), labels, batch.get("index"))
                        # The rank's share of the step's examples: averaged over ranks, the mean over all.
                        scaled = objective * weights[slot] if world > 1 else objective
                        self.scaler.scale(scaled / cfg.grad_accum).backward()
                    pending += 1
                    losses.add(loss, len(labels) if real else 0)
                    if last:
                        if cfg.clip_norm:
                            self.scaler.unscale_(self.optimizer)  # clip the true gradients
                            nn.utils.clip_grad_norm_(self.model.parameters(), cfg.clip_norm)
                        self.scaler.step(self.optimizer)
                        self.scaler.update()
                        self.scheduler.step()
                        self.optimizer.zero_grad(set_to_none=True)
                        s.step += 1
                        s.batches_done = (distributed.done_after(len(batches), start, world, slot + 1)
                                          if feed is None else b + 1)
                        pending = 0
                        rng_at_step = torch.get_rng_state()
                        if s.step % LOG_EVERY == 0:
                            losses.flush()
                            bar.set_postfix(loss=f"{s.epoch_loss / max(1, s.epoch_samples):.4f}", refresh=False)
                            if self.callbacks and s.epoch_samples > logged[1]:
                                logs = {"loss": (s.epoch_loss - logged[0]) / (s.epoch_samples - logged[1]),
                                        "lr": self.optimizer.param_groups[0]["lr"]}
                                for callback in self.callbacks:
                                    callback.on_log(s.step, logs)
                                logged = (s.epoch_loss, s.epoch_samples)
                            if self.device.type == "cpu":
                                release_free_memory()
                        if cfg.checkpoint_every and s.step % cfg.checkpoint_every == 0:
                            losses.flush()
                            s.train_seconds += time.perf_counter() - t0
                            self.save_last(rng_at_step)
                            t0 = time.perf_counter()
                        if self.on_step is not None:
                            try:
                                self.on_step(s.step)
                            except KeyboardInterrupt:
                                self.signals.signum = self.signals.signum or signal.SIGINT
                        self._stop_if_asked(rng_at_step, losses, t0)  # a whole step is done
                    bar.update(max(0, min(world, len(batches) - (start + slot * world))) if feed is None else 1)
                bar.close()
                losses.flush()
                s.train_seconds += time.perf_counter() - t0
                s.samples_seen += s.epoch_samples
                self._end_epoch(val)
                rng_at_step = torch.get_rng_state()
                self.save_last(rng_at_step)
                for callback in self.callbacks:
                    callback.on_epoch_end(s.epoch, s.history[-1])
        finally:
            if clear is not None:
                clear()
            if feed is not None:
                feed.close()
                if feed.skipped:
                    log.warning("%s: skipped %d bad row(s) while training", feed.batches.stream.source, feed.skipped)
        return TrainResult(
            run_dir=self.run_dir,
            history=s.history,
            best_epoch=s.best_epoch + 1,
            best_val_accuracy=best_accuracy(s.history, s.best_epoch + 1, s.best_val),
            train_samples_per_sec=s.samples_seen / max(s.train_seconds, 1e-9),
            stopped_early=s.stopped_early,
        )

    def _end_epoch(self, val: EncodedDataset) -> None:
        s, cfg = self.state, self.cfg
        metrics = self.validate(val)
        record = {
            "epoch": s.epoch + 1,
            "step": s.step,
            "train_loss": s.epoch_loss / max(1, s.epoch_samples),
            **metrics,
            "lr": self.optimizer.param_groups[0]["lr"],
            "train_samples_per_sec": s.samples_seen / max(s.train_seconds, 1e-9),  # all ranks together
        }
        if distributed.world_size() > 1:
            record["world_size"] = distributed.world_size()
            record["effective_batch_size"] = cfg.batch_size * cfg.grad_accum * distributed.world_size()
        s.history.append(record)
        if distributed.is_main():
            # the loss, accuracy (micro-F1 when multi-label) and the measure that picks the best epoch
            shown = dict.fromkeys(["val_loss", "val_micro_f1" if "val_micro_f1" in metrics else "val_accuracy",
                                   self.select])
            log.info("epoch %d: train loss %.4f, %s", record["epoch"], record["train_loss"],
                     ", ".join(f"{k.replace('_', ' ')} {metrics[k]:.4f}" for k in shown if k in metrics))
        # Every rank has the same metrics (gathered), hence the same decisions; rank 0 writes.
        score = -metrics["val_loss"] if self.select == "val_loss" else metrics[self.select]  # higher is better
        if score > s.best_val:
            s.best_val, s.best_epoch, s.bad_epochs = score, s.epoch, 0
            if distributed.is_main():
                save_checkpoint(self.run_dir / "best", self.model, self.tokenizer, self.meta)
        else:
            s.bad_epochs += 1
            if cfg.patience and s.bad_epochs >= cfg.patience:
                log.info("early stopping: no improvement for %d epoch(s)", s.bad_epochs)
                s.stopped_early = True
        s.epoch += 1
        s.batches_done = 0
        s.epoch_loss, s.epoch_samples = 0.0, 0
        if distributed.is_main():
            atomic_write_text(self.run_dir / HISTORY_FILE, "".join(json.dumps(r) + "\n" for r in s.history))


def read_history(run_dir: Path) -> list[dict[str, Any]]:
    """The epochs of a run's training log (``run_dir/metrics.jsonl``, :data:`HISTORY_FILE`); none
    when there is no log."""
    path = Path(run_dir) / HISTORY_FILE
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    return [json.loads(line) for line in lines if line.strip()]


def start_from_priors(model: nn.Module, priors: np.ndarray) -> None:
    """Set the bias of a freshly drawn multi-label head to the labels' prior logits
    (:func:`losses.prior_logits`): the first steps then learn what tells the labels apart, not their
    base rates. Not for the hinge loss (its logits are margins, not log-odds) nor for a head the
    model loaded."""
    fresh = getattr(model, "fresh_output_bias", None)
    bias = fresh() if fresh is not None else None
    if bias is None:
        return
    with torch.no_grad():
        bias.copy_(torch.from_numpy(priors).to(bias.device, bias.dtype))


def hinge_margin(cfg: TrainConfig, multi_label: bool) -> float | None:
    """The margin of the loss ``cfg`` asks for: ``hinge_margin`` where a multi-label model trains
    with the hinge loss (``multilabel_loss``, or the recipe's rule 9), else None (BCE or CE)."""
    return cfg.hinge_margin if multi_label and cfg.multilabel_loss == "hinge" else None


def best_accuracy(history: list[dict[str, Any]], best_epoch: int, fallback: float) -> float:
    """``TrainResult.best_val_accuracy``: the best epoch's validation accuracy (micro-F1 for a
    multi-label model), whichever measure chose the epoch (the loss, macro-F1)."""
    record = next((h for h in history if h.get("epoch") == best_epoch), {})
    return float(record.get("val_accuracy", record.get("val_micro_f1", fallback)))


def monitored(monitor: str, multi_label: bool) -> str:
    """The validation record's key for ``TrainConfig.monitor``: for single-label data micro-F1 is
    accuracy; for multi-label data accuracy is subset accuracy."""
    if monitor == "auto":
        monitor = "micro_f1" if multi_label else "accuracy"
    if monitor == "loss":
        return "val_loss"
    if multi_label:
        return "val_subset_accuracy" if monitor == "accuracy" else f"val_{monitor}"
    return "val_accuracy" if monitor == "micro_f1" else f"val_{monitor}"


def multilabel_validation(logits: np.ndarray, targets: np.ndarray) -> dict[str, float]:
    """Validation metrics of a multi-label model from its logits (N, L) and 0/1 targets (N, L):
    unweighted BCE, micro/macro-F1 at thresholds tuned on this very split (optimistic, but it is
    how the model will be used, so it ranks epochs best) and at 0.5, subset accuracy and LRAP."""
    y = np.asarray(targets)
    loss = float(bce_with_logits(torch.from_numpy(logits), torch.from_numpy(y)))
    scores = sigmoid(logits)  # (N, L)
    tuned = tune_thresholds(y, scores).apply(scores)
    fixed = scores >= 0.5
    return {
        "val_loss": loss,
        "val_micro_f1": precision_recall_f1(y, tuned, "micro")[2],
        "val_macro_f1": precision_recall_f1(y, tuned, "macro")[2],
        "val_micro_f1_at_0.5": precision_recall_f1(y, fixed, "micro")[2],
        "val_macro_f1_at_0.5": precision_recall_f1(y, fixed, "macro")[2],
        "val_subset_accuracy": subset_accuracy(y, tuned),
        "val_lrap": label_ranking_average_precision(y, scores),
    }


# What a resumed run may change: how long it trains, when it stops early and how often it saves.
# Anything else would make it another run under the same name (even the evaluation batch size:
# it shapes the batches a frozen encoder's features are computed in, hence their rounding).
RESUMABLE = ("train.epochs", "train.patience", "train.checkpoint_every", "train.max_steps")
# Model settings that fit itself fills in from the data and the tokenizer: no one chooses them.
DERIVED = ("model.vocab_size", "model.max_length", "model.pad_id", "model.unk_id", "model.num_labels", "model.labels")
LOCK_FILE = ".lock"


class ResumeConflict(ConfigError):
    """A resumed run was asked to change settings that cannot change mid-run; ``changes`` maps
    each ``section.key`` to its (stored, asked) values."""

    def __init__(self, message: str, changes: dict[str, tuple[Any, Any]]) -> None:
        super().__init__(message)
        self.changes = changes


class RunFolderBusy(FileExistsError):
    """Another process is training into the same run folder."""


class RunLock:
    """An exclusive lock on a run folder while training writes into it: two runs into one folder
    would mix their checkpoints and logs. The lock file (``.lock``) names the owner (pid, host,
    start time). The lock itself is the kernel's ``flock``, released when its owner ends however
    it ends, so a lock file left by a killed run is free and is taken over, with a warning."""

    def __init__(self, folder: Path) -> None:
        self.path = Path(folder) / LOCK_FILE
        self._fd: int | None = None

    @staticmethod
    def _owner(fd: int) -> dict[str, Any]:
        os.lseek(fd, 0, os.SEEK_SET)
        try:
            data = json.loads(os.read(fd, 4096).decode("utf-8") or "{}")
        except (UnicodeDecodeError, json.JSONDecodeError):
            return {}
        return data if isinstance(data, dict) else {}

    def __enter__(self) -> RunLock:
        try:
            import fcntl
        except ImportError:  # not a POSIX system
            log.warning("%s: file locks are not available here; the run folder is not protected", self.path.parent)
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = self._owner(fd)
            os.close(fd)
            raise RunFolderBusy(
                f"{self.path.parent} is in use by another training run (pid {owner.get('pid', '?')} on "
                f"{owner.get('host', '?')}, since {owner.get('started', '?')}); wait for it to end or "
                "choose another output folder"
            ) from None
        except OSError as e:  # a file system without locks (some network mounts)
            os.close(fd)
            log.warning("%s: cannot lock the run folder (%s); it is not protected from a second run", self.path.parent, e)
            return self
        previous = self._owner(fd)
        if previous.get("pid") not in (None, os.getpid()):
            log.warning(
                "%s: taking over the lock of pid %s on %s (since %s), which ended without releasing it",
                self.path.parent, previous.get("pid"), previous.get("host", "?"), previous.get("started", "?"),
            )
        owner = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, json.dumps(owner).encode("utf-8"))
        self._fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            import fcntl

            os.ftruncate(self._fd, 0)  # an empty lock file: released cleanly
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def _flat(config: dict[str, Any]) -> dict[str, Any]:
    flat = {f"{section}.{k}": v for section in ("model", "tokenizer", "train") for k, v in config[section].items()}
    flat["family"] = config.get("family", "transformer")
    return flat


def _conflicts(stored: dict[str, Any], wanted: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    a, b = _flat(stored), _flat(wanted)
    return {
        k: (a.get(k), b.get(k))
        for k in sorted(set(a) | set(b))
        if k not in RESUMABLE and k not in DERIVED and a.get(k) != b.get(k)
    }


def _check_resumable(run_dir: Path, stored: dict[str, Any], wanted: dict[str, Any]) -> None:
    changes = _conflicts(stored, wanted)
    if changes:
        listed = ", ".join(f"{k} ({old!r} -> {new!r})" for k, (old, new) in changes.items())
        raise ResumeConflict(
            f"{run_dir}: a resumed run keeps its settings, and these differ from the run's: {listed}. "
            f"Only {', '.join(RESUMABLE)} may change; start a new run (overwrite, or another folder) "
            "to train with other settings",
            changes,
        )


def stored_config(run_dir: str | Path) -> dict[str, Any]:
    """The resolved configuration a run stored in ``run_dir/config.json`` (as a plain dict)."""
    path = Path(run_dir) / CONFIG_FILE
    try:
        return dict(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        raise CheckpointError(f"{path.parent}: not a training run (no {CONFIG_FILE})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path}: corrupted ({e})") from None


def _as_run_config(data: dict[str, Any]) -> RunConfig:
    from .config import resolve_config

    return resolve_config(
        data["preset"], model=data["model"], tokenizer=data["tokenizer"], train=data["train"],
        family=data.get("family", "transformer"),
    )


def resume_config(run_dir: str | Path, changes: dict[str, Any] | None = None) -> RunConfig:
    """The configuration of the run in ``run_dir`` with ``changes`` ({"model"|"tokenizer"|"train":
    {key: value}}, plus optional "preset"/"family"; None values ignored) applied: what a resumed
    run trains with. Raises :class:`ResumeConflict` naming every change to a setting outside
    :data:`RESUMABLE` (a change to the value stored is no change)."""
    stored = stored_config(run_dir)
    changes = changes or {}
    wanted: dict[str, Any] = {
        "preset": stored["preset"], "family": changes.get("family") or stored.get("family", "transformer"),
    }
    for section in ("model", "tokenizer", "train"):
        given = {k: v for k, v in (changes.get(section) or {}).items() if v is not None}
        wanted[section] = {**stored[section], **given}
    if changes.get("preset") not in (None, stored["preset"]):
        raise ResumeConflict(
            f"{run_dir}: a resumed run keeps its settings; it was trained with preset {stored['preset']!r}, "
            f"not {changes['preset']!r}", {"preset": (stored["preset"], changes["preset"])},
        )
    _check_resumable(Path(run_dir), stored, wanted)
    return _as_run_config(wanted)


def fit(
    config: RunConfig | None,
    train: TextDataset | TextStream,
    run_dir: str | Path,
    validation: TextDataset | None = None,
    device: str | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    on_step: Callable[[int], None] | None = None,
    callbacks: Sequence[Callback] = (),
    signals: StopSignals | None = None,
    loss_hook: Callable[[Loss, list[str]], Loss] | None = None,
    meta_extra: dict[str, Any] | None = None,
) -> TrainResult:
    """Train a classifier on ``train`` into ``run_dir`` (``best/``, ``last/``, metrics log).

    Without ``validation``, a stratified ``config.train.val_fraction`` of ``train`` is held out;
    labels of ``validation`` never seen in ``train`` fail before anything is written.

    With ``resume=True`` training continues from ``run_dir/last`` with the run's stored settings.
    ``config`` (None: the stored one) may change only :data:`RESUMABLE` (see
    :func:`resume_config`); anything else raises :class:`ResumeConflict`. A run that is complete
    (all epochs done, or stopped early) returns at once with ``already_complete`` set, unless more
    ``epochs`` (or, after early stopping, more ``patience``) are asked for. The learning-rate
    schedule is then recomputed for the new total: from the next step on, the rate is the one a
    run planned for that many epochs would have at that step (with ``linear``, the decay is
    stretched; the rate jumps up from the old schedule's end).

    The run folder is locked while training (:class:`RunLock`; another process is refused with
    :class:`RunFolderBusy`), and what a killed run left there is recovered first (checkpoint
    folders moved aside or half written: :func:`~classiformer.checkpoint.recover_leftovers`).
    SIGINT and SIGTERM stop training at the next safe point with ``last/`` saved, raising
    :class:`TrainingInterrupted` (see the module docstring); pass ``signals`` to share the
    :class:`StopSignals` of a caller that also acts on them (a tuning study between trials).
    ``callbacks`` (:class:`Callback`) see every log step and epoch (tracking, pruning).

    ``train`` may be a :class:`~classiformer.data.streaming.TextStream` (data larger than memory,
    ``config.train.streaming``): a first pass finds the labels, holds out the validation rows
    (unless ``validation`` is given) and samples the texts a from-scratch tokenizer is fit on;
    training then reads the stream for ``max_steps`` steps (default: ``epochs`` passes).

    ``loss_hook(loss, labels)``, given the loss fit built from the data (class weights or
    pos_weight) and the label order of the model's outputs, returns the loss to train with; it is
    called with each batch's logits, labels and example indices (rows of ``train``), which is how
    distillation finds a row's teacher targets. ``meta_extra`` goes into the checkpoints'
    ``extra`` (what distillation records about its teachers).
    """
    run_dir = Path(run_dir)
    dev = resolve_device(device)
    limit_onednn_cache()
    if not train.labelled:
        raise DataError(f"{train.source}: training data needs labels")
    if config is None and not resume:
        raise ConfigError("a new run needs a config (resolve_config); only resume=True can take the stored one")
    # In a process group rank 0 alone locks the run folder, recovers it and writes into it.
    with distributed.on_main_context(RunLock(run_dir)), (signals or StopSignals()) as signals:
        for line in distributed.on_main(lambda: recover_leftovers(run_dir)):
            log.warning("%s: %s", run_dir, line)
        if resume:
            if not (run_dir / "last").exists():
                raise CheckpointError(f"{run_dir}: nothing to resume (no last/ checkpoint)")
            stored = stored_config(run_dir)
            if config is not None:
                _check_resumable(run_dir, stored, config.to_dict())
                wanted = {**stored, "train": {**stored["train"], **{k.split(".")[1]: getattr(config.train, k.split(".")[1]) for k in RESUMABLE}}}
            else:
                wanted = stored
            config = _as_run_config(wanted)
        elif (run_dir / "last").exists() and not overwrite:
            raise FileExistsError(
                f"{run_dir} already holds a training run; pass resume (--resume) to continue it, "
                "overwrite (--overwrite) to replace it, or choose another output folder"
            )
        assert config is not None
        tcfg = config.train
        if isinstance(train, TextStream) != tcfg.streaming:
            raise ConfigError("streaming training takes a TextStream (and a TextStream needs streaming=True)")
        if isinstance(train, TextStream):  # the first pass (data/streaming.py)
            if tcfg.pos_weight != "none":
                raise ConfigError("pos_weight auto is not available when streaming; weigh labels with a class-weight file")
            scan = train.scan(tcfg.seed, tcfg.val_fraction if validation is None else None, tcfg.tokenizer_sample,
                              progress)
            validation = scan.validation if validation is None else validation
        # Multi-label (one sigmoid per label, BCE) when the data has label lists or it is asked for.
        multi = train.is_multi_label or tcfg.multi_label or (validation is not None and validation.is_multi_label)
        if multi:
            train = train.as_multi_label()
            validation = None if validation is None else validation.as_multi_label()
            if tcfg.class_weight != "none":
                raise ConfigError("class weights are for single-label models; a multi-label model takes pos_weight "
                                  "(--pos-weight auto)")
        elif tcfg.multilabel_loss != "bce":
            raise ConfigError(f"multilabel_loss {tcfg.multilabel_loss!r} is for multi-label models (label lists, or "
                              "--multi-label); a single-label model trains with cross-entropy")
        elif tcfg.pos_weight != "none":
            raise ConfigError("pos_weight is for multi-label models (label lists, or --multi-label); a single-label "
                              "model takes class weights (--class-weight balanced)")
        if validation is None:
            assert isinstance(train, TextDataset)  # a stream's validation rows came from its first pass
            train, validation = stratified_split(train, tcfg.val_fraction, tcfg.seed)
            log.info("validation: %d examples held out of %d (stratified, seed %d)", len(validation), len(train) + len(validation), tcfg.seed)
        labels = train.label_names()
        if isinstance(train, TextStream) and not tcfg.max_steps:  # the budget: epochs passes over the data
            tcfg.max_steps = tcfg.epochs * train.steps_per_pass(tcfg)
        if len(labels) < 2 and not multi:  # one label of a multi-label model is a yes/no detector
            raise DataError(f"{train.source}: need at least two classes, found {labels}")
        check_labels_known(validation, labels)  # before any work, not after the last epoch
        if isinstance(train, TextDataset) and not resume and distributed.is_main():
            warn_overlap(train.texts, validation, "validation")  # best epoch and thresholds come from it
        weights = class_weights(tcfg.class_weight, labels, train.labels or [] if isinstance(train, TextDataset)
                                else train.label_counts)  # before anything is written: a bad file fails fast
        problem_type = MULTI_LABEL if multi else SINGLE_LABEL

        if resume:
            done = _complete(run_dir, tcfg)
            if done is not None:
                return done
            model, tokenizer, meta = load_checkpoint(run_dir / "last", map_location=dev)
            if meta.labels != labels:
                raise DataError(f"{train.source}: labels {labels} differ from the run's {meta.labels}")
            if meta.problem_type != problem_type:
                raise DataError(f"{train.source}: {problem_type} data, but the run trains a {meta.problem_type} model")
            meta.train = config.to_dict()["train"]
            kept = {"recipe": stored["recipe"]} if "recipe" in stored else {}  # what the recipe chose at the start
            if distributed.is_main():
                atomic_write_text(run_dir / CONFIG_FILE, json.dumps({**config.to_dict(), "data": meta.data, **kept}, indent=2))
        else:
            # Settings adapted to the data (recipe.py), before anything is built from them.
            recipe: dict[str, Any] = {}
            # A stream has its own budget in steps (max_steps); the statistics cost a pass over the
            # texts, so they are taken only for a config the recipe adapts.
            if isinstance(train, TextDataset) and applies(config):
                counts = encode_labels(train, labels).sum(0) if multi else np.bincount(encode_labels(train, labels), minlength=len(labels))
                recipe = adapt(config, DataStats.of(train.texts, [int(c) for c in counts], multi, counts_words(config)))
            seed_everything(tcfg.seed)
            config.model.num_labels = len(labels)
            if hasattr(config.model, "labels"):
                config.model.labels = labels
            if hasattr(config.model, "problem_type"):  # Hugging Face configs record it for from_pretrained
                config.model.problem_type = problem_type
            from_source = getattr(FAMILIES.get(config.family), "from_source", None)
            if from_source is not None:  # a pretrained model brings its weights and its own tokenizer
                model, tokenizer = from_source(config.model, config.tokenizer)
            else:
                # Trained once, by rank 0, and shared: every rank encodes with the same vocabulary.
                tok_config = config.tokenizer
                tok_texts = train.texts if isinstance(train, TextDataset) else train.tokenizer_sample
                tokenizer = distributed.on_main(lambda: train_tokenizer(tok_config, tok_texts))
                config.model.vocab_size = tokenizer.vocab_size
                config.model.max_length = tokenizer.max_length
                config.model.pad_id = tokenizer.pad_id
                if hasattr(config.model, "unk_id"):
                    config.model.unk_id = getattr(tokenizer, "oov_id", 1)
                model = build_model(config.family, config.model)
            meta = CheckpointMeta(
                family=config.family, model=config.to_dict()["model"], labels=labels,
                train=config.to_dict()["train"], preset=config.preset,
                data=asdict(train.columns) if train.columns else {}, problem_type=problem_type,
            )
            chosen = {"recipe": recipe} if recipe else {}
            if distributed.is_main():
                atomic_write_text(run_dir / CONFIG_FILE, json.dumps({**config.to_dict(), "data": meta.data, **chosen}, indent=2))
        meta.extra.update(meta_extra or {})
        sample = validation_sample(validation) if distributed.is_main() else None
        if sample is not None:  # what `classiformer export` verifies an export on
            atomic_write_text(run_dir / VALIDATION_FILE, sample)
        if weights is not None:
            meta.extra["class_weights"] = {lbl: float(w) for lbl, w in zip(labels, weights)}
            log.info("class weights (%s): %s", tcfg.class_weight,
                     ", ".join(f"{lbl} {w:.3g}" for lbl, w in meta.extra["class_weights"].items()))
        train_enc: EncodedDataset | StreamFeed
        if isinstance(train, TextStream):
            train_enc = train.feed(tokenizer.encode, tokenizer.pad_id, labels, tcfg, pad_multiple(dev), tokenizer.max_length)
        else:
            train_enc = encode(tokenizer, train, labels)
        val_enc = encode(tokenizer, validation, labels)
        branch = getattr(model, "ngrams", None)
        if not resume and branch is not None and branch.idf is not None:  # a resumed run has them from its checkpoint
            # a stream's document frequencies come from the texts its tokenizer was fit on
            branch.fit_idf(train_enc.ids if isinstance(train_enc, EncodedDataset)
                           else tokenizer.encode(cast(TextStream, train).tokenizer_sample))
        margin = hinge_margin(tcfg, multi)
        if multi and isinstance(train_enc, StreamFeed):
            loss = Loss(multi_label=True, hinge_margin=margin)
        elif multi:
            assert isinstance(train_enc, EncodedDataset) and train_enc.labels is not None
            pw = pos_weights(train_enc.labels, tcfg.pos_weight)
            if pw is not None:
                meta.extra["pos_weight"] = {lbl: float(w) for lbl, w in zip(labels, pw)}
            log.info("multi-label: %d labels, %.2f labels per training example, %d without any", len(labels),
                     float(train_enc.labels.sum(1).mean()), int((train_enc.labels.sum(1) == 0).sum()))
            loss = Loss(multi_label=True, pos_weight=None if pw is None else torch.from_numpy(pw), hinge_margin=margin)
            if margin is None and not resume:
                start_from_priors(model, prior_logits(train_enc.labels, pw))
        else:
            loss = Loss(class_weight=None if weights is None else torch.from_numpy(weights),
                        label_smoothing=tcfg.label_smoothing)
        if loss_hook is not None:
            loss = loss_hook(loss, labels)
        n_params = sum(p.numel() for p in model.parameters())
        log.info("model %s: %s parameters; %d train / %d validation examples; device %s",
                 config.family, f"{n_params:,}", len(train_enc), len(val_enc), dev)
        trainer = Trainer(model, tokenizer, meta, tcfg, run_dir, dev, progress, on_step, loss, signals=signals,
                          callbacks=callbacks)
        result = trainer.train(train_enc, val_enc, resume_from=run_dir / "last" if resume else None)
        best, temperature = result.best_dir, result.temperature
        result.temperature = distributed.on_main(
            lambda: calibrate_best(best, val_enc, tcfg.eval_batch_size, dev) if best.exists() else temperature
        )
        agreed = distributed.agree_signal(signals.signum)  # not assigned when None: see _stop_if_asked
        if agreed is not None:  # it came after the last epoch's bookkeeping: the run is complete
            signals.signum = agreed
            message = (f"stopped by {_signal_name(agreed)} after the last epoch: training is complete "
                       f"in {run_dir}")
            log.warning("%s", message)
            raise TrainingInterrupted(message, signals.signum)
    return result


def _complete(run_dir: Path, cfg: TrainConfig) -> TrainResult | None:
    """The result of the run in ``run_dir`` when ``cfg`` asks for no more training (and its best
    checkpoint is calibrated), else None."""
    state = load_trainer_state(run_dir / "last")
    p = state["progress"]
    stopped_early = p["stopped_early"] and bool(cfg.patience) and p["bad_epochs"] >= cfg.patience
    best = run_dir / "best"
    calibrated = best.exists() and "calibration" in read_meta(best).extra
    finished = p["step"] >= cfg.max_steps if cfg.streaming and cfg.max_steps else p["epoch"] >= cfg.epochs
    if not (finished or stopped_early) or (best.exists() and not calibrated):
        return None
    log.info("%s: the run is complete (%d epoch(s)%s); nothing to do", run_dir, p["epoch"],
             ", stopped early" if stopped_early else "")
    return stored_result(run_dir, state, stopped_early=stopped_early, already_complete=True)


def stored_result(run_dir: Path, state: dict[str, Any] | None = None, stopped_early: bool | None = None,
                  already_complete: bool = False) -> TrainResult:
    """The :class:`TrainResult` of the run in ``run_dir`` from its ``last/`` trainer state (``state``,
    when already read) and the temperature stored in ``best/``; ``stopped_early`` defaults to the
    state's."""
    state = load_trainer_state(run_dir / "last") if state is None else state
    p = state["progress"]
    history = json.loads(state["history"])
    best = run_dir / "best"
    return TrainResult(
        run_dir=run_dir, history=history, best_epoch=p["best_epoch"] + 1,
        best_val_accuracy=best_accuracy(history, p["best_epoch"] + 1, p["best_val"]),
        train_samples_per_sec=p["samples_seen"] / max(p["train_seconds"], 1e-9),
        stopped_early=p["stopped_early"] if stopped_early is None else stopped_early,
        temperature=read_meta(best).temperature if best.exists() else 1.0, already_complete=already_complete,
    )


def calibrate_best(folder: Path, val: EncodedDataset, batch_size: int, device: torch.device) -> float:
    """Temperature scaling of the best checkpoint on the validation split (Guo et al., 2017); for a
    multi-label model, a temperature per label and then the tuned decision thresholds."""
    from .calibration import store_temperature

    model, tokenizer, meta = load_checkpoint(folder, map_location=device)
    logits = logits_for(model, val, tokenizer.pad_id, batch_size, device)
    assert val.labels is not None
    if meta.multi_label:
        from .calibration import store_label_calibration

        store_label_calibration(folder, logits, val.labels, "validation split")
        return 1.0
    return float(store_temperature(folder, logits, val.labels, "validation split")["temperature"])
