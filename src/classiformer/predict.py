"""Prediction: ``Classifier.load(path).predict(texts)`` and streaming file prediction."""

from __future__ import annotations

import csv
import json
import logging
import os
import sys
import tempfile
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
from tqdm.auto import tqdm

from .checkpoint import ONNXRUNTIME, CheckpointError, CheckpointMeta, apply_umask, load_checkpoint, read_meta
from .config import LONG_TEXT_MODES
from .data.batching import EncodedDataset
from .inference import Runner, TorchRunner, mean_by_owner, sigmoid, softmax
from .runtime import amp_dtype, bf16_worthwhile, resolve_device, set_threads
from .thresholds import Thresholds, fixed_thresholds
from .tokenizers import Tokenizer

if TYPE_CHECKING:
    import torch
    from torch import nn

    from .explain import Explainable, Explanation

# PyTorch (and explain.py, which needs it) are imported where a PyTorch model is used: a process
# that serves an exported model runs it with ONNX Runtime and never loads PyTorch (~210 MB).

log = logging.getLogger(__name__)


def _is_torch_module(obj: object) -> bool:
    """Whether ``obj`` is a PyTorch module, without importing PyTorch (no module can be one before)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(obj, torch.nn.Module)


def resolve_model_path(path: str | Path) -> Path:
    """A run folder means its best checkpoint; a checkpoint folder means itself."""
    p = Path(path)
    if (p / "classiformer.json").exists():
        return p
    for sub in ("best", "last"):
        if (p / sub / "classiformer.json").exists():
            return p / sub
    if not p.exists():
        raise CheckpointError(f"{p}: no such model folder")
    raise CheckpointError(f"{p}: not a classiformer model (no classiformer.json here or in best/ or last/)")


class NeedsPyTorchModel(ValueError):
    """What an exported (ONNX Runtime) model cannot do: explanations need the PyTorch checkpoint."""


class Classifier:
    """A trained model with its tokenizer and labels, ready to predict: a PyTorch checkpoint, or a
    folder written by ``classiformer export`` that runs through ONNX Runtime. Both go through one
    :class:`~classiformer.inference.Runner` (``self.runner``), so every output below is the same."""

    model: nn.Module | None  # None for an exported model (see ``runner``)

    def __init__(
        self,
        model: nn.Module | Runner,
        tokenizer: Tokenizer,
        meta: CheckpointMeta,
        device: torch.device | str = "cpu",
        batch_size: int = 256,
        path: Path | None = None,
        bf16: bool = False,
        long_text: str | None = None,
        fp16: bool = False,
        threshold: float | None = None,
    ) -> None:
        # Inference in bf16 (or fp16) converts the weights once: on CPUs with bf16 matrix units this
        # is much faster than autocast, which re-casts every weight on every call. On CPUs without
        # them bf16 is emulated and several times slower, so it falls back to fp32 (with a warning).
        self.dtype = amp_dtype(bf16 and bf16_worthwhile(device), fp16)
        if _is_torch_module(model):
            import torch

            self.model = cast("nn.Module", model).to(device, dtype=self.dtype).eval()
            self.runner: Runner = TorchRunner(self.model, tokenizer.pad_id, device)
            self.device: torch.device | str = torch.device(device)
        else:  # an exported model's runner: its precision was fixed at export
            if bf16 or fp16:
                raise ValueError("--bf16/--fp16 apply to PyTorch checkpoints; an exported model's precision was "
                                 "chosen at export (classiformer export --quantize)")
            self.model, self.runner = None, cast(Runner, model)
            self.device = "cpu"
        if long_text is not None:
            if not hasattr(tokenizer, "long_text"):
                raise ValueError(f"--long-text needs a pretrained-encoder model; this {meta.family!r} model truncates")
            if long_text not in LONG_TEXT_MODES:
                raise ValueError(f"long_text must be one of {list(LONG_TEXT_MODES)}, got {long_text!r}")
            tokenizer.long_text = long_text
        self.tokenizer = tokenizer
        self.meta = meta
        self.labels: list[str] = list(meta.labels)
        self.batch_size = batch_size
        self.path = path
        # Multi-label models: the label decisions' thresholds, tuned on validation unless overridden.
        self.thresholds = (
            Thresholds.from_dict(meta.thresholds) if meta.thresholds is not None else fixed_thresholds(0.5, len(self.labels))
        )
        if threshold is not None:
            self.set_threshold(threshold)

    @classmethod
    def load(
        cls, path: str | Path, device: str | None = None, batch_size: int = 256, bf16: bool = False,
        long_text: str | None = None, fp16: bool = False, threshold: float | None = None,
        threads: int | None = None,
    ) -> Classifier:
        """``long_text`` (pretrained encoders): ``truncate``, ``head-tail`` or ``chunks``, overriding
        the checkpoint's setting; ``bf16`` / ``fp16``: bfloat16 / float16 weights and activations
        (logits come back as float32; fp16 is for GPUs without bf16). On a CPU without bf16 matrix
        units ``bf16`` falls back to float32 unless ``CLASSIFORMER_BF16=force``. ``threshold``
        (multi-label models): one decision threshold for every label instead of the tuned ones.
        ``threads``: intra-op threads (default: the free cores, ``runtime.default_threads``, for an
        exported model; PyTorch's current setting for a checkpoint); for a PyTorch checkpoint this
        sets PyTorch's process-wide count (``runtime.set_threads``). A folder written by
        ``classiformer export`` runs through ONNX Runtime on the CPU."""
        folder = resolve_model_path(path)
        if read_meta(folder).runtime == ONNXRUNTIME:
            if device not in (None, "auto", "cpu"):
                raise ValueError(f"{folder}: an exported model runs on the CPU with ONNX Runtime; --device {device} "
                                 "needs the PyTorch checkpoint")
            from .export.runtime import load_exported

            runner, tokenizer, meta = load_exported(folder, threads)
            return cls(runner, tokenizer, meta, "cpu", batch_size, folder, bf16, long_text, fp16, threshold)
        if threads:
            set_threads(threads)  # process-wide in PyTorch; an export gets them per session
        dev = resolve_device(device)
        model, tokenizer, meta = load_checkpoint(folder, map_location=dev)
        return cls(model, tokenizer, meta, dev, batch_size, folder, bf16, long_text, fp16, threshold)

    @property
    def temperature(self) -> float:
        return float(self.meta.temperature or 1.0)

    def _check(self, texts: Sequence[str]) -> list[str]:
        if isinstance(texts, str):
            texts = [texts]
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise TypeError(f"text {i} is {type(t).__name__}, not str")
        return list(texts)

    def logits(self, texts: Sequence[str], progress: bool = False, shared: bool = False) -> np.ndarray:
        """Raw logits (N, C), before temperature scaling. With ``shared``, in a process group (every
        rank calls it with the same texts), each rank computes every world-th batch and every rank
        gets all rows: the logits of one process, computed in shares."""
        texts = self._check(texts)
        if not texts:
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        if getattr(self.tokenizer, "long_text", None) == "chunks":
            windows, owner = self.tokenizer.encode_windows(texts)  # type: ignore[attr-defined]
            logits = self._run(EncodedDataset(windows), progress, shared)
            return mean_by_owner(logits, owner, len(texts))
        return self._run(EncodedDataset(self.tokenizer.encode(texts)), progress, shared)

    def _run(self, data: EncodedDataset, progress: bool, shared: bool) -> np.ndarray:
        if not shared:
            return self.runner.logits(data, self.batch_size, progress)
        from . import distributed  # imports PyTorch: only where shares are asked for

        if not distributed.active():
            return self.runner.logits(data, self.batch_size, progress)
        if not isinstance(self.runner, TorchRunner):
            raise ValueError("logits in shares across processes need a PyTorch checkpoint, not an exported model")
        part = (distributed.rank(), distributed.world_size())
        return distributed.gather_rows(self.runner.logits(data, self.batch_size, progress, part=part))

    @property
    def multi_label(self) -> bool:
        return self.meta.multi_label

    @property
    def label_temperatures(self) -> np.ndarray:
        """A multi-label model's temperature per label (1 where none was fitted)."""
        return np.broadcast_to(np.asarray(self.meta.temperatures or 1.0, dtype=np.float64), (len(self.labels),))

    def set_threshold(self, value: float) -> None:
        """Decide every label of a multi-label model at ``value`` instead of its tuned threshold."""
        if not self.multi_label:
            raise ValueError("a decision threshold applies to multi-label models; this one picks one class per text")
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"a threshold is a probability in [0, 1], got {value}")
        self.thresholds = fixed_thresholds(value, len(self.labels))

    def predict_proba(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        """Probabilities (N, C), columns in the order of ``self.labels``: a softmax over classes, or
        for a multi-label model one independent sigmoid per label (rows need not sum to 1);
        calibrated when the checkpoint stores a temperature (one per label for multi-label)."""
        logits = self.logits(texts, progress)
        if not len(logits):
            return logits
        if self.multi_label:
            return sigmoid(logits, self.label_temperatures).astype(np.float32)
        return softmax(logits, self.temperature)

    def predict(self, texts: Sequence[str], progress: bool = False) -> list[Any]:
        """The predicted class of each text, or for a multi-label model the list of its labels at
        or above their thresholds (possibly empty), in label order."""
        return self.decisions(self.predict_proba(texts, progress))

    def predict_label_sets(self, texts: Sequence[str], progress: bool = False) -> list[list[str]]:
        """Each text's labels whose probability reaches the label's threshold (multi-label models)."""
        if not self.multi_label:
            raise ValueError("label sets come from multi-label models; this one picks one class per text (predict)")
        return self.decisions(self.predict_proba(texts, progress))

    def decisions(self, proba: np.ndarray) -> list[Any]:
        """What ``predict`` returns, from probabilities ``predict_proba`` gave: each row's class, or
        for a multi-label model its labels at or above their thresholds."""
        if self.multi_label:
            return [[self.labels[j] for j in np.flatnonzero(row)] for row in self.thresholds.apply(proba)]
        return [self.labels[int(i)] for i in np.asarray(proba).argmax(axis=1)]

    def top_k(self, proba: np.ndarray, k: int) -> list[list[tuple[str, float]]]:
        """Each row's ``k`` highest-scoring labels as ``(label, score)``, best first (ties in label
        order); all of them when ``k`` exceeds the label count."""
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"top_k must be a whole number of at least 1, got {k!r}")
        p = np.asarray(proba)
        order = np.argsort(-p, axis=1, kind="stable")[:, :k]
        return [[(self.labels[int(j)], float(row[j])) for j in idx] for row, idx in zip(p, order)]

    def outputs(self, proba: np.ndarray, top_k: int | None = None, digits: int | None = None) -> list[dict[str, Any]]:
        """One output row per row of ``proba``: the decision under :attr:`output_key`, then the score
        of every label (``probabilities``, in label order) or, with ``top_k``, the ``top_k`` best
        labels with their scores (``top_k``: ``[{"label", "score"}, ...]``, best first). Scores
        rounded to ``digits`` when given. What ``predict`` writes and the server answers."""
        def num(x: float) -> float:
            return round(float(x), digits) if digits is not None else float(x)

        decisions = self.decisions(proba)
        if top_k is not None:
            return [
                {self.output_key: d, "top_k": [{"label": lbl, "score": num(x)} for lbl, x in best]}
                for d, best in zip(decisions, self.top_k(proba, top_k))
            ]
        return [
            {self.output_key: d, "probabilities": {lbl: num(x) for lbl, x in zip(self.labels, p)}}
            for d, p in zip(decisions, proba)
        ]

    @property
    def output_key(self) -> str:
        """The field that holds a prediction in output rows: ``label``, or ``labels`` (a list) for multi-label models."""
        return "labels" if self.multi_label else "label"

    def explain(
        self, text: str, methods: Sequence[str] | None = None, words: bool = False, label: str | None = None
    ) -> Explanation:
        """Which tokens (or, with ``words``, words) the score of ``label`` for ``text`` rests on
        (default: the highest-scoring label, a single-label model's prediction), by attention
        rollout and integrated gradients (and, for a model with an n-gram branch, that branch's
        part), with the attention weights and which tokens are special; see explain.py.
        ``methods`` default to ``explain.DEFAULT_METHODS``.
        Needs the PyTorch model: an exported one raises :class:`NeedsPyTorchModel`."""
        from .explain import DEFAULT_METHODS, explain

        return explain(self._explainable(), text, DEFAULT_METHODS if methods is None else methods, words, label=label)

    def explain_labels(
        self, text: str, labels: Sequence[str] | None = None, methods: Sequence[str] | None = None,
        words: bool = False,
    ) -> list[Explanation]:
        """One explanation per label of ``labels``, or without them per predicted label (a
        multi-label model's labels at their thresholds); see ``explain.explain_labels``."""
        from .explain import DEFAULT_METHODS, explain_labels

        return explain_labels(self._explainable(), text, labels, DEFAULT_METHODS if methods is None else methods, words)

    def _explainable(self) -> Explainable:
        if self.model is None:
            source = (self.meta.export or {}).get("source")
            raise NeedsPyTorchModel(
                f"{self.path}: an exported ONNX model cannot explain its predictions (explanations need gradients "
                f"and attention weights); explain with the PyTorch checkpoint it came from"
                + (f" ({source})" if source else "")
            )
        return cast("Explainable", self)  # self.model is set: checked above

    def describe(self) -> dict[str, Any]:
        return {
            "path": str(self.path) if self.path else None,
            "family": self.meta.family,
            "labels": self.labels,
            "model": self.meta.model,
            "tokenizer": self.tokenizer.to_config(),
            "temperature": self.temperature,
            "problem_type": self.meta.problem_type,
            **({"thresholds": self.thresholds.per_label} if self.multi_label else {}),
            "runtime": self.meta.runtime,
            **({"export": {k: v for k, v in self.meta.export.items() if k != "verification"}} if self.meta.export else {}),
            "format_version": self.meta.format_version,
            "classiformer_version": self.meta.classiformer_version,
        }


def chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    it = iter(items)
    while chunk := list(islice(it, size)):
        yield chunk


def predict_file(
    clf: Classifier,
    rows: Iterable[tuple[int, str]],
    output: Path,
    chunk_size: int = 4096,
    progress: bool = True,
    total: int | None = None,
    top_k: int | None = None,
    processes: int = 1,
) -> int:
    """Predict ``(line, text)`` rows in chunks (constant memory) and write CSV or JSONL by
    ``output``'s extension: line, label and one probability column per class (multi-label models:
    ``labels``, in CSV joined by ``|``, in JSONL a list). With ``top_k``, the ``top_k`` best labels
    and their scores instead of every probability (CSV: ``top1_label``, ``top1_score``, ...; JSONL:
    :meth:`Classifier.outputs`' ``top_k`` list). With ``processes`` > 1 the chunks are predicted by
    that many worker processes (:func:`scored_chunks`), the output in input order. The output
    appears only when complete (written to a temporary file, then renamed). Returns the row count."""
    output = Path(output)
    fmt = "jsonl" if output.suffix.lower() in (".jsonl", ".json", ".ndjson") else "csv"
    output.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{output.name}.", dir=output.parent)
    n = 0
    try:
        apply_umask(Path(tmp))
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f, tqdm(
            total=total, unit="doc", desc="predict", disable=not progress
        ) as bar:
            writer = csv.writer(f) if fmt == "csv" else None
            if top_k is not None:
                clf.top_k(np.zeros((0, len(clf.labels))), top_k)  # a bad k fails before any work
            k = min(top_k, len(clf.labels)) if top_k is not None else 0
            if writer:
                scores = [c for i in range(1, k + 1) for c in (f"top{i}_label", f"top{i}_score")] if top_k else [
                    f"p_{lbl}" for lbl in clf.labels]
                writer.writerow(["line", clf.output_key, *scores])
            for chunk, proba in scored_chunks(clf, chunks(rows, chunk_size), processes):
                for (line, _), p, out in zip(chunk, proba, clf.outputs(proba, top_k, digits=6)):
                    if writer:
                        label = out[clf.output_key]
                        cells = ([c for b in out["top_k"] for c in (b["label"], f"{b['score']:.6f}")] if top_k
                                 else [f"{x:.6f}" for x in p])
                        writer.writerow([line, "|".join(label) if clf.multi_label else label, *cells])
                    else:
                        f.write(json.dumps({"line": line, **out}, ensure_ascii=False) + "\n")
                n += len(chunk)
                bar.update(len(chunk))
        os.replace(tmp, output)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return n


# ---------------------------------------------------------------------------------------------
# Prediction in several processes (``predict --processes N``): a pool of ``torch.multiprocessing``
# worker processes, each holding the model once (loaded by the pool's initializer) and running on
# its share of the CPU threads, classifies chunks of texts; the parent reads the input, keeps at
# most ``2 x N`` chunks in flight and takes the results back in input order. Memory stays constant
# however long the input: ``Pool.imap`` would read the whole input ahead of the workers, so chunks
# are submitted one by one as results come back. Workers are started with ``spawn``: a child forked
# from a process whose OpenMP thread pool has run can hang (PyTorch's "Multiprocessing best
# practices"), a spawned one starts clean. Each chunk is predicted by the same code as in one
# process, so with the same threads per process the probabilities are the same floats.

_worker_classifier: Classifier | None = None  # in a worker process: its model


def _init_worker(settings: dict[str, Any], threads: int) -> None:
    global _worker_classifier
    import torch

    torch.set_num_threads(threads)
    _worker_classifier = Classifier.load(**settings)


def _predict_chunk(texts: list[str]) -> np.ndarray:
    assert _worker_classifier is not None, "the pool's initializer loads the model"
    return _worker_classifier.predict_proba(texts)


def load_settings(clf: Classifier) -> dict[str, Any]:
    """What :meth:`Classifier.load` needs to load ``clf`` again in another process."""
    if clf.path is None:
        raise ValueError("prediction in several processes needs a model saved in a folder (Classifier.load)")
    dtype = str(clf.dtype)  # torch.bfloat16 prints as "torch.bfloat16"; None for float32 and exported models
    return {
        "path": str(clf.path), "device": str(clf.device), "batch_size": clf.batch_size,
        "bf16": dtype == "torch.bfloat16", "fp16": dtype == "torch.float16",
        "long_text": getattr(clf.tokenizer, "long_text", None),
    }


def scored_chunks(
    clf: Classifier, chunks: Iterable[list[tuple[int, str]]], processes: int = 1, threads: int | None = None,
) -> Iterator[tuple[list[tuple[int, str]], np.ndarray]]:
    """``(chunk, probabilities)`` for each chunk of ``(line, text)`` rows, in input order; with
    ``processes`` > 1 computed by that many worker processes of ``threads`` threads each (default:
    this process's threads shared among them, at least one each)."""
    if processes <= 1:
        for chunk in chunks:
            yield chunk, clf.predict_proba([t for _, t in chunk])
        return
    import torch
    import torch.multiprocessing as mp

    threads = threads or max(1, torch.get_num_threads() // processes)
    log.info("predicting in %d processes of %d thread(s) each", processes, threads)
    ctx = mp.get_context("spawn")
    with ctx.Pool(processes, initializer=_init_worker, initargs=(load_settings(clf), threads)) as pool:
        pending: deque[tuple[list[tuple[int, str]], Any]] = deque()
        for chunk in chunks:
            pending.append((chunk, pool.apply_async(_predict_chunk, ([t for _, t in chunk],))))
            if len(pending) >= 2 * processes:
                done, result = pending.popleft()
                yield done, result.get()
        while pending:
            done, result = pending.popleft()
            yield done, result.get()
