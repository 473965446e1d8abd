"""Knowledge distillation: a from-scratch student learns a trained teacher's soft targets.

The loss of Hinton et al., 2015 ("Distilling the Knowledge in a Neural Network"), per example::

    alpha * T^2 * KL(teacher_T || student_T) + (1 - alpha) * CE(student, gold)

where ``x_T`` is the softmax of logits divided by the temperature ``T`` (the T^2 keeps the soft
term's gradients at the scale of the hard term's as T changes; the teacher's logits are its
calibrated ones, see :func:`distill`), and the gold term counts only
for examples that have a gold label: texts of an unlabelled set and synthetic variants have none.
The loss is the mean over the batch. A multi-label teacher gives one soft target per label:
``sigmoid(logits / T)``, and the soft term is the Bernoulli KL of each label, averaged over
labels (binary cross-entropy against the soft targets, less their entropy, so it is 0 exactly
when the student matches).

The transfer set, after Tang et al., 2019 ("Distilling Task-Specific Knowledge from BERT into
Simple Neural Networks"): the training texts, texts without labels (``unlabeled``), and synthetic
variants of both (:mod:`classiformer.data.augment`). The teacher labels each distinct text once,
in length-sorted batches (``Classifier.logits``), in bf16 where that is faster than fp32
(:func:`~classiformer.runtime.bf16_worthwhile`); its raw logits are stored in the run folder
(``teacher_logits/``, ``.npy`` files read memory-mapped, per teacher and text: see
:func:`teacher_logits`), so a rerun, or a run on more variants, labels only texts not seen before. Several teachers are an ensemble: the
soft targets average their probabilities.

The student is trained by the one training loop (:func:`~classiformer.training.fit`) with
:class:`DistillLoss`, which finds each batch's teacher targets by the batch's example ``index``;
the result is an ordinary run, whose ``classiformer.json`` records the teachers under
``extra["distillation"]``.

Which student learns best from a teacher depends on the task, not only on its size: a bag of words
carries a topic, and the wide-and-deep transformer ``base`` learns it from a few thousand texts; a
sentence's sentiment is composed ("not bad at all"), and a bidirectional GRU learns that from the
teacher's outputs where ``base`` does not (Tang et al. distilled into a BiLSTM for this reason).
:func:`distill_students` (the command's default) trains several students on the same transfer set
and validation split, reusing the teacher's cached logits, and keeps the one with the lowest
validation log loss: model selection on held-out data, as for the best epoch.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .calibration import nll
from .checkpoint import ONNXRUNTIME, atomic_write_text, read_meta, write_meta
from .config import ConfigError, RunConfig
from .data.augment import Augmenter
from .data.datasets import DataError, TextDataset, stratified_split
from .losses import Loss, hinge_with_logits
from .predict import Classifier, resolve_model_path
from .runtime import cpu_features, resolve_device
from .training import LOCK_FILE, Callback, TrainResult, fit

log = logging.getLogger(__name__)

CACHE_DIR = "teacher_logits"
# Texts labelled per cache part: a labelling pass stopped partway (a session's end, Ctrl-C) keeps
# every finished part, so a rerun labels only the rest. An IMDB review takes MiniLM ~40 ms on
# this 2-core machine, so a part is about 80 s of work; short texts or a GPU fill one in seconds.
PART_TEXTS = 2048
# alpha and T: the best of bench/distill.py's grid for the lesson student on the AG News split
# (alpha 0.5, T 1: 86.97%; T 2: 86.18%; T 4: 86.45%; alpha 1, T 2: 85.26%; one seed, so the
# spread is within one standard error; docs/benchmarks.md, "Distillation").
DEFAULT_ALPHA = 0.5
DEFAULT_TEMPERATURE = 1.0
# ``classiformer distill`` without --student or --config trains each of DEFAULT_STUDENTS and keeps
# the better on validation (:func:`distill_students`); DEFAULT_STUDENT is the preset under a
# --config file that names none. Why these two:
# on AG News the wide-and-deep transformer wins (the GRU alone 82.6% against 86.9%: topic words,
# 5,472 rows), on SST-2 the GRU (85.9 / 86.4 / 86.2% over three seeds against 82.0%: composition,
# which the GRU learns from the teacher and the bag of words does not); with the n-gram branch the
# GRU lost SST-2 again (80.8%). docs/benchmarks.md, "Distillation".
DEFAULT_STUDENT = "base"
DEFAULT_STUDENTS = ("base", "rnn-attention")
# The GRU reads a text one word after another, so its training time grows with length where the
# transformer's hardly does (training samples/s, 1 thread: 3.7x the transformer's at 39 tokens,
# 8.4x at 123, 14x at 256; docs/benchmarks.md, "RNN with attention vs transformer"): 25,000
# reviews of IMDB's length would take it hours on a laptop CPU, against distillation's 30-minute
# budget. Longer texts get ``base`` alone.
RNN_MAX_MEAN_WORDS = 50
STUDENTS_DIR = "students"  # the candidates a run did not keep, one folder each


def kd_term(student: torch.Tensor, teacher_probs: torch.Tensor, temperature: float, multi_label: bool) -> torch.Tensor:
    """Per-example ``T^2 * KL(teacher_T || student_T)`` (B,) of student logits (B, C) against the
    teacher's temperature-``T`` probabilities (B, C); multi-label: the Bernoulli KL per label,
    averaged over labels."""
    t = temperature
    z = student.float() / t
    q = teacher_probs.float()
    if multi_label:
        # KL(q || p) of Bernoullis = BCE(p, q) - H(q); x log x taken as 0 at x = 0.
        bce = F.binary_cross_entropy_with_logits(z, q, reduction="none")
        entropy = -(torch.xlogy(q, q) + torch.xlogy(1 - q, 1 - q))
        return t * t * (bce - entropy).mean(1)
    log_p = F.log_softmax(z, dim=1)
    return t * t * (torch.xlogy(q, q) - q * log_p).sum(1)


@dataclass
class DistillLoss(Loss):
    """The distillation loss (module docstring) for a training set whose row ``i`` has teacher
    probabilities ``teacher_probs[i]`` (N, C) at the temperature and gold iff ``has_gold[i]``;
    the gold term is ``gold``'s loss (its class weights, pos_weight and label smoothing)."""

    teacher_probs: torch.Tensor = field(default_factory=lambda: torch.zeros(0, 0))
    has_gold: torch.Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.bool))
    alpha: float = DEFAULT_ALPHA
    temperature: float = DEFAULT_TEMPERATURE

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 <= self.alpha <= 1.0:
            raise ConfigError(f"alpha weighs the teacher's term against the gold one: it must be in [0, 1], got {self.alpha}")
        if not (self.temperature > 0 and math.isfinite(self.temperature)):
            raise ConfigError(f"the distillation temperature must be a positive number, got {self.temperature}")
        if len(self.teacher_probs) != len(self.has_gold):
            raise ValueError(f"{len(self.teacher_probs)} rows of teacher targets but {len(self.has_gold)} gold flags")

    @classmethod
    def wrap(cls, gold: Loss, teacher_probs: np.ndarray, has_gold: np.ndarray, alpha: float, temperature: float) -> DistillLoss:
        return cls(**{f.name: getattr(gold, f.name) for f in fields(Loss)},  # the gold loss's settings, all of them
                   teacher_probs=torch.from_numpy(np.ascontiguousarray(teacher_probs, dtype=np.float32)),
                   has_gold=torch.from_numpy(np.asarray(has_gold, dtype=bool)), alpha=alpha, temperature=temperature)

    def to(self, device: torch.device | str) -> DistillLoss:
        moved = super().to(device)  # a DistillLoss: Loss.to keeps the class and its fields
        assert isinstance(moved, DistillLoss)
        return replace(moved, teacher_probs=self.teacher_probs.to(device), has_gold=self.has_gold.to(device))

    def _gold_per_example(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if self.multi_label and self.hinge_margin is not None:
            return hinge_with_logits(logits, labels, self.hinge_margin, self.pos_weight, reduction="none").mean(1)
        if self.multi_label:
            bce = F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype), pos_weight=self.pos_weight,
                                                     reduction="none")
            return bce.mean(1)
        ce = F.cross_entropy(logits, labels, reduction="none", label_smoothing=self.label_smoothing)
        return ce if self.class_weight is None else ce * self.class_weight[labels]

    def __call__(self, logits: torch.Tensor, labels: torch.Tensor, index: torch.Tensor | None = None) -> torch.Tensor:
        if index is None:
            raise ValueError("the distillation loss finds the teacher's targets by the batch's example index")
        index = index.to(self.teacher_probs.device)
        soft = kd_term(logits, self.teacher_probs[index], self.temperature, self.multi_label)
        if self.alpha == 1.0:
            return soft.mean()
        gold = self._gold_per_example(logits, labels) * self.has_gold[index].to(logits.dtype)
        return (self.alpha * soft + (1.0 - self.alpha) * gold).mean()


# -- the teacher ---------------------------------------------------------------------------------


def _teacher_key(teacher: Classifier) -> str:
    """What identifies a teacher's outputs: its metadata, its files' sizes and times, its dtype."""
    assert teacher.path is not None
    folder = teacher.path
    h = hashlib.sha256((folder / "classiformer.json").read_bytes())
    for f in sorted(folder.rglob("*")):
        if f.is_file():
            st = f.stat()
            h.update(f"{f.relative_to(folder)}:{st.st_size}:{st.st_mtime_ns}".encode())
    h.update(str(teacher.dtype).encode())
    return h.hexdigest()


def _digests(texts: Sequence[str]) -> np.ndarray:
    return np.array([hashlib.sha1(t.encode("utf-8", "surrogatepass")).digest() for t in texts], dtype="S20")


def load_teachers(paths: Sequence[str | Path], device: str | None = None, batch_size: int = 64) -> list[Classifier]:
    """The teacher models (run or checkpoint folders, or folders ``classiformer export`` wrote,
    which run with ONNX Runtime on the CPU), which must share labels and problem type; bf16 where
    the device makes it faster than fp32."""
    if not paths:
        raise ConfigError("distillation needs at least one teacher model")
    dev = resolve_device(device)
    # bf16 only where it is faster than fp32: a GPU that has it, a CPU with bf16 matrix units
    # (runtime.bf16_worthwhile's rule, without its warning: nobody asked for bf16 here).
    if dev.type == "cuda":
        bf16 = torch.cuda.is_bf16_supported()
    else:
        bf16 = dev.type == "cpu" and cpu_features().native_bf16
    teachers = []
    for p in paths:
        if read_meta(resolve_model_path(p)).runtime == ONNXRUNTIME:  # exported: ONNX Runtime, on the CPU
            teachers.append(Classifier.load(p, device="cpu", batch_size=batch_size))
        else:
            teachers.append(Classifier.load(p, device=str(dev), batch_size=batch_size, bf16=bf16))
    first = teachers[0]
    for path, t in zip(paths[1:], teachers[1:]):
        if sorted(t.labels) != sorted(first.labels):
            raise ConfigError(f"{path}: teacher labels {t.labels} differ from {paths[0]}'s {first.labels}")
        if t.multi_label != first.multi_label:
            raise ConfigError(f"{path}: a {t.meta.problem_type} teacher among {first.meta.problem_type} ones")
    return teachers


# Texts to label above which a pretrained encoder's fp32 labelling pass is long enough (minutes on
# a laptop CPU) to be worth a word on the faster path.
SUGGEST_INT8_TEXTS = 5000


def _suggest_int8_teacher(teachers: Sequence[Classifier], folders: Sequence[Path], n_texts: int) -> None:
    """On a CPU without bf16 units, a pretrained encoder labels about twice as fast through its int8
    ONNX export as through PyTorch fp32 (docs/benchmarks.md, "Export and ONNX Runtime": MiniLM 2.2x
    on SST-2, 2.1x on IMDB, one thread); say so before a long labelling pass, once per teacher."""
    if n_texts < SUGGEST_INT8_TEXTS or cpu_features().native_bf16:
        return
    for t, folder in zip(teachers, folders):
        if t.model is not None and t.meta.family == "hf" and str(t.device) == "cpu":
            log.warning("%s labels %d texts through PyTorch in float32 (this CPU has no bf16 units); its int8 "
                        "export labels about twice as fast where its parity check accepts it: classiformer export %s -o "
                        "%s-int8 --quantize int8, then give that folder as the teacher", folder, n_texts, folder, folder)


def teacher_logits(
    teacher: Classifier, texts: Sequence[str], cache_dir: Path | None = None, progress: bool = False
) -> np.ndarray:
    """``teacher``'s raw logits (N, C) for ``texts``, columns in ``teacher.labels`` order.

    With ``cache_dir``, every text's logits are kept there, per teacher (a folder named by a hash
    of its files), in parts: ``part-K.npy`` (rows of logits, read memory-mapped) and
    ``part-K.keys.npy`` (the SHA-1 of each row's text, written last, so a part without keys is
    one a killed run left half written, and is ignored). Only texts no part holds are labelled,
    ``PART_TEXTS`` at a time, each lot a new part as soon as it is done: a rerun, a run stopped
    partway, or another run on a larger transfer set (more ``--augment``), labels only what is new."""
    texts = list(texts)
    if cache_dir is None or teacher.path is None:
        return teacher.logits(texts, progress)
    key = _teacher_key(teacher)
    folder = cache_dir / key[:16]
    folder.mkdir(parents=True, exist_ok=True)
    info = folder / "teacher.json"
    if not info.exists():
        atomic_write_text(info, json.dumps({"teacher": str(teacher.path), "key": key, "labels": teacher.labels}, indent=2))
    where: dict[bytes, tuple[np.ndarray, int]] = {}
    parts = sorted(folder.glob("part-*.keys.npy"))
    for keys_file in parts:
        rows_file = keys_file.with_name(keys_file.name.replace(".keys.npy", ".npy"))
        try:
            keys, rows = np.load(keys_file), np.load(rows_file, mmap_mode="r")
        except (OSError, ValueError) as e:
            log.warning("%s: unreadable cache part (%s); ignored", rows_file, e)
            continue
        if rows.shape != (len(keys), len(teacher.labels)):
            log.warning("%s: %s rows for %d keys; ignored", rows_file, rows.shape, len(keys))
            continue
        for i, k in enumerate(keys.tolist()):
            where[k] = (rows, i)
    digests = _digests(texts).tolist()
    first: dict[bytes, int] = {}
    for i, d in enumerate(digests):
        first.setdefault(d, i)
    todo = [d for d in first if d not in where]  # distinct texts no part holds, in order
    if todo:
        if len(todo) < len(first):
            log.info("teacher %s: %d of %d texts read from %s; labelling the other %d", teacher.path,
                     len(first) - len(todo), len(first), folder, len(todo))
        t0 = time.perf_counter()
        bar = tqdm(total=len(todo), unit="text", desc="teacher labels", disable=not progress, leave=False)
        for k, start in enumerate(range(0, len(todo), PART_TEXTS)):
            lot = todo[start:start + PART_TEXTS]
            fresh = teacher.logits([texts[first[d]] for d in lot])
            _write_part(folder, f"part-{len(parts) + k:04d}-{time.time_ns()}", fresh, lot)
            for j, d in enumerate(lot):
                where[d] = (fresh, j)
            bar.update(len(lot))
        bar.close()
        seconds = time.perf_counter() - t0
        log.info("teacher %s: labelled %d texts in %.1f s (%.0f texts/s)", teacher.path, len(todo), seconds,
                 len(todo) / max(seconds, 1e-9))
    else:
        log.info("teacher %s: logits of %d texts read from %s", teacher.path, len(texts), folder)
    out = np.empty((len(texts), len(teacher.labels)), dtype=np.float32)
    for i, d in enumerate(digests):
        rows, j = where[d]
        out[i] = rows[j]
    return out


def _write_part(folder: Path, name: str, rows: np.ndarray, keys: list[bytes]) -> None:
    """One cache part: the rows, then their keys (a part without keys is ignored when read)."""
    for path, array in ((folder / f"{name}.npy", rows), (folder / f"{name}.keys.npy", np.array(keys, dtype="S20"))):
        tmp = path.with_name(f".{path.name}.tmp")
        with open(tmp, "wb") as f:  # np.save on a path would append .npy to the temporary name
            np.save(f, array)
        tmp.replace(path)


def soft_targets(logits: Sequence[np.ndarray], temperature: float, multi_label: bool) -> np.ndarray:
    """The ensemble's probabilities (N, C) at ``temperature``: the mean over teachers of each
    one's ``softmax(z / T)`` (multi-label: ``sigmoid(z / T)``)."""
    total: np.ndarray | None = None
    for z in logits:
        x = np.asarray(z, dtype=np.float64) / temperature
        if multi_label:
            p = 1.0 / (1.0 + np.exp(-np.clip(x, -60, 60)))
        else:
            e = np.exp(x - x.max(axis=1, keepdims=True))
            p = e / e.sum(axis=1, keepdims=True)
        total = p if total is None else total + p
    assert total is not None
    return (total / len(logits)).astype(np.float32)


# -- the transfer set and the run ----------------------------------------------------------------


@dataclass
class TransferSet:
    """The student's training texts: gold rows first (their labels in ``gold``), then unlabelled
    texts, then synthetic variants; ``has_gold`` flags the first kind."""

    texts: list[str]
    has_gold: np.ndarray  # (N,) bool
    gold: TextDataset  # the labelled rows, in order
    n_unlabeled: int = 0
    n_augmented: int = 0


def transfer_set(
    train: TextDataset, unlabeled: Sequence[str] = (), augment: int = 0, seed: int = 0,
    augmenter: Augmenter | None = None,
) -> TransferSet:
    """Training texts, then ``unlabeled`` texts, then ``augment`` variants of each of them."""
    texts = list(train.texts) + list(unlabeled)
    base = len(texts)
    extra: list[str] = []
    if augment > 0:
        aug = augmenter or Augmenter(seed=seed)
        extra, _ = aug.augment(texts, augment)
        log.info("augmentation: %d variants of %d texts (%d asked per text)", len(extra), base, augment)
    has_gold = np.zeros(base + len(extra), dtype=bool)
    has_gold[: len(train)] = True
    return TransferSet(texts + extra, has_gold, train, len(unlabeled), len(extra))


def _placeholder_labels(ts: TransferSet, probs: np.ndarray, labels: list[str], multi_label: bool) -> TextDataset:
    """The transfer set as a labelled dataset for the training loop: gold labels where they exist,
    the teacher's decisions elsewhere. The loss never reads the latter (``has_gold`` is False
    there); they only give every row a label of the right kind."""
    n_gold = len(ts.gold)
    rest = probs[n_gold:]
    if multi_label:
        gold_sets = ts.gold.label_sets if ts.gold.label_sets is not None else [[lb] for lb in ts.gold.labels or []]
        sets = list(gold_sets) + [[labels[j] for j in np.flatnonzero(row >= 0.5)] for row in rest]
        return TextDataset(ts.texts, None, ts.gold.source, label_sets=sets, columns=ts.gold.columns)
    gold = list(ts.gold.labels or [])
    return TextDataset(ts.texts, gold + [labels[int(j)] for j in rest.argmax(1)], ts.gold.source,
                       columns=ts.gold.columns)


def require_labelled(train: TextDataset) -> None:
    if not train.labelled:
        raise DataError(f"{train.source}: distillation trains on labelled texts (--train); give texts without "
                        "labels as --unlabeled")


def refuse_existing_run(run_dir: Path, overwrite: bool) -> None:
    if (run_dir / "last").exists() and not overwrite:
        raise FileExistsError(f"{run_dir} already holds a training run; pass overwrite (--overwrite) to replace it, "
                              "or choose another output folder")


def distill(
    teachers: Sequence[str | Path],
    config: RunConfig,
    train: TextDataset,
    run_dir: str | Path,
    validation: TextDataset | None = None,
    unlabeled: TextDataset | Sequence[str] | None = None,
    augment: int = 0,
    alpha: float = DEFAULT_ALPHA,
    temperature: float = DEFAULT_TEMPERATURE,
    device: str | None = None,
    teacher_device: str | None = None,
    teacher_batch_size: int = 64,
    overwrite: bool = False,
    progress: bool = True,
    cache_dir: str | Path | None = None,
    callbacks: Sequence[Callback] = (),
) -> TrainResult:
    """Train ``config``'s (from-scratch) student into ``run_dir`` on the soft targets of
    ``teachers`` (model folders; several are averaged) over the transfer set built from ``train``,
    ``unlabeled`` and ``augment`` variants per text; see the module docstring. Without
    ``validation``, a stratified ``config.train.val_fraction`` of ``train`` is held out before
    anything is augmented, so no variant of a validation text is trained on. Returns
    :class:`~classiformer.training.TrainResult`. The teacher's logits are cached in ``cache_dir``
    (default: ``run_dir/teacher_logits``; several runs may share one). ``callbacks`` go to
    :func:`~classiformer.training.fit` (run tracking: ``tracking.start_tracking``)."""
    run_dir = Path(run_dir)
    require_labelled(train)
    if augment < 0:
        raise ConfigError(f"augment is a number of variants per text, got {augment}")
    if config.family == "hf":
        raise ConfigError("the student is a from-scratch model (a preset such as lesson or base, or --config); "
                          "a pretrained encoder is what a teacher is")
    refuse_existing_run(run_dir, overwrite)
    folders = [resolve_model_path(p) for p in teachers]
    models = load_teachers(folders, teacher_device, teacher_batch_size)
    labels = list(models[0].labels)
    multi = models[0].multi_label
    if multi:
        train = train.as_multi_label()
        validation = None if validation is None else validation.as_multi_label()
    elif train.is_multi_label:
        raise DataError(f"{train.source}: label lists, but the teacher is single-label")
    known = set(labels)
    for ds in (train, validation):
        if ds is not None:
            names = {lb for s in ds.label_sets for lb in s} if ds.label_sets is not None else set(ds.labels or [])
            unknown = sorted(names - known)
            if unknown:
                raise DataError(f"{ds.source}: label(s) {unknown} that the teacher does not know (its labels: {labels})")
    if validation is None:
        train, validation = stratified_split(train, config.train.val_fraction, config.train.seed)
        log.info("validation: %d labelled texts held out before augmentation", len(validation))
    extra_texts = list(unlabeled.texts if isinstance(unlabeled, TextDataset) else unlabeled or [])
    ts = transfer_set(train, extra_texts, augment, config.train.seed)

    # Each distinct text once: n-gram sampling of short texts often draws the same variant twice.
    distinct = list(dict.fromkeys(ts.texts))
    where = {t: i for i, t in enumerate(distinct)}
    rows = np.fromiter((where[t] for t in ts.texts), dtype=np.int64, count=len(ts.texts))
    _suggest_int8_teacher(models, folders, len(distinct))
    t0 = time.perf_counter()
    per_teacher = []
    for model in models:
        z = teacher_logits(model, distinct, Path(cache_dir) if cache_dir else run_dir / CACHE_DIR, progress)
        # Calibrated first (divided by the temperature fitted on the teacher's validation split):
        # raw logits of a small model can be tiny (fitted temperatures of 0.05 are common), and then
        # softmax(z / T) would be all but uniform and teach nothing; calibrated, T means the same
        # for every teacher.
        z = np.asarray(z, dtype=np.float64) / (model.label_temperatures if multi else model.temperature)
        order = [model.labels.index(lb) for lb in labels]  # every teacher's columns in the first's order
        per_teacher.append(z[:, order][rows])
    label_seconds = time.perf_counter() - t0
    hard = soft_targets(per_teacher, 1.0, multi)
    data = _placeholder_labels(ts, hard, labels, multi)
    student_labels = data.label_names()  # the order fit gives the student's outputs
    if set(student_labels) != known:
        missing = sorted(known - set(student_labels))
        raise DataError(f"{train.source}: the teacher knows label(s) {missing} that no training text has and it "
                        "never predicts on the transfer set; the student cannot learn them")
    cols = [labels.index(lb) for lb in student_labels]
    probs = soft_targets(per_teacher, temperature, multi)[:, cols]

    def make_loss(gold: Loss, names: list[str]) -> Loss:
        if names != student_labels:
            raise RuntimeError(f"label order {names} differs from the transfer set's {student_labels}")
        return DistillLoss.wrap(gold, probs, ts.has_gold, alpha, temperature)

    record = {
        "teachers": [str(f) for f in folders],
        "alpha": alpha, "temperature": temperature, "augment": augment,
        "transfer_set": {"texts": len(ts.texts), "gold": int(ts.has_gold.sum()), "unlabeled": ts.n_unlabeled,
                         "augmented": ts.n_augmented, "distinct": len(distinct)},
        "teacher_labelling_seconds": round(label_seconds, 3),
    }
    log.info("distilling %d teacher(s) into %s on %d texts (%d gold, %d unlabelled, %d variants); alpha %g, T %g",
             len(folders), config.preset, len(ts.texts), int(ts.has_gold.sum()), ts.n_unlabeled, ts.n_augmented,
             alpha, temperature)
    return fit(config, data, run_dir, validation=validation, device=device, overwrite=overwrite,
               progress=progress, callbacks=callbacks, loss_hook=make_loss, meta_extra={"distillation": record})


def default_students(train: TextDataset) -> list[str]:
    """The presets ``classiformer distill`` tries on ``train`` by default: :data:`DEFAULT_STUDENTS`,
    less the GRU when the texts average more than :data:`RNN_MAX_MEAN_WORDS` words."""
    words = sum(len(t.split()) for t in train.texts) / max(1, len(train.texts))
    return [p for p in DEFAULT_STUDENTS if p != "rnn-attention" or words <= RNN_MAX_MEAN_WORDS]


def validation_log_loss(model: str | Path, validation: TextDataset) -> float:
    """The mean negative log-likelihood of ``validation``'s gold labels under a single-label model's
    calibrated probabilities: what picks a student (a loss, unlike accuracy over a few hundred
    texts, moves with every example)."""
    clf = Classifier.load(model)
    gold = np.array([clf.labels.index(lb) for lb in validation.labels or []])
    return nll(clf.logits(validation.texts), gold, clf.temperature)


def distill_students(
    teachers: Sequence[str | Path],
    configs: Sequence[RunConfig],
    train: TextDataset,
    run_dir: str | Path,
    validation: TextDataset | None = None,
    overwrite: bool = False,
    cache_dir: str | Path | None = None,
    **kwargs: Any,
) -> TrainResult:
    """:func:`distill` into each of ``configs`` (students of different families), on the same
    transfer set, validation split and cached teacher logits; the student whose validation log
    loss (:func:`validation_log_loss`) is lowest becomes the run in ``run_dir``, the others stay
    in ``run_dir/students/PRESET``. The choice and every candidate's loss are recorded in the
    kept checkpoints' ``extra["distillation"]["student_choice"]``. One config, or a multi-label
    teacher (whose students are compared by nothing measured yet), trains the first alone.
    ``kwargs`` go to :func:`distill`."""
    run_dir = Path(run_dir)
    configs = list(configs)
    if not configs:
        raise ConfigError("no student to distil into")
    multi = any(read_meta(resolve_model_path(t)).multi_label for t in teachers)
    if len(configs) == 1 or multi:
        if len(configs) > 1:
            log.info("a multi-label teacher: the student is %s alone", configs[0].preset)
        return distill(teachers, configs[0], train, run_dir, validation, overwrite=overwrite,
                       cache_dir=cache_dir, **kwargs)
    refuse_existing_run(run_dir, overwrite)
    require_labelled(train)
    if validation is None:  # one split for every candidate, so that their losses compare
        train, validation = stratified_split(train, configs[0].train.val_fraction, configs[0].train.seed)
    cache = Path(cache_dir) if cache_dir else run_dir / CACHE_DIR
    names = [c.preset if [d.preset for d in configs].count(c.preset) == 1 else f"{c.preset}-{i}"
             for i, c in enumerate(configs)]
    results: list[TrainResult] = []
    losses: dict[str, float] = {}
    for name, config in zip(names, configs):
        log.info("student %s (%d of %d)", name, len(results) + 1, len(configs))
        result = distill(teachers, config, train, run_dir / STUDENTS_DIR / name, validation,
                         overwrite=True, cache_dir=cache, **kwargs)
        results.append(result)
        losses[name] = validation_log_loss(result.best_dir, validation)
        log.info("student %s: validation log loss %.4f", name, losses[name])
    chosen = min(losses, key=lambda n: losses[n])
    keep = results[names.index(chosen)]
    choice = {"candidates": names, "validation_log_loss": {n: round(v, 6) for n, v in losses.items()},
              "chosen": chosen, "validation_texts": len(validation)}
    for sub in ("best", "last"):  # recorded before the move: a reader of run_dir sees it or nothing
        if (keep.run_dir / sub).exists():
            meta = read_meta(keep.run_dir / sub)
            meta.extra.setdefault("distillation", {})["student_choice"] = choice
            write_meta(keep.run_dir / sub, meta)
    # the kept candidate's run becomes run_dir's, finished and complete: checkpoints, logs, and what
    # trackers wrote there (TensorBoard events), all but the candidate's lock
    for src in sorted(keep.run_dir.iterdir()):
        if src.name == LOCK_FILE:
            continue
        dest = run_dir / src.name
        if dest.is_dir():
            shutil.rmtree(dest)
        elif dest.exists():
            dest.unlink()
        os.replace(src, dest)
    shutil.rmtree(keep.run_dir, ignore_errors=True)
    for callback in kwargs.get("callbacks", ()):  # trackers go on with the kept run, where it now is
        follow = getattr(callback, "follow", None)
        if follow is not None:
            follow(run_dir)
    log.info("kept student %s (validation log loss %s)", chosen,
             ", ".join(f"{n} {v:.4f}" for n, v in losses.items()))
    return replace(keep, run_dir=run_dir)
