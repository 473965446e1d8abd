"""``export_model``: a checkpoint -> an exported folder that runs with ONNX Runtime, verified.

The folder is a model folder like a checkpoint (``Classifier.load`` reads both)::

    classiformer.json   the checkpoint's metadata with runtime "onnxruntime" and ``export``: opset,
                        precision, exporter and runtime versions, the parity check's figures
    model.onnx          input_ids, attention_mask (batch, sequence) int64 -> logits (batch, C)
    tokenizer/          the checkpoint's tokenizer
    config.json, ...    pretrained encoders only: the Hugging Face config (id2label, label2id,
                        problem_type) and tokenizer files, the layout Optimum's
                        ORTModelForSequenceClassification.from_pretrained reads

Before anything replaces ``dest``, PyTorch and ONNX Runtime classify the same texts (the
validation examples the training run kept, ``RUN/validation.jsonl``; else a ``--calibration``
file; else built-in probe texts of every length, past the length limit too) through ``Classifier``, so the long-text policy and the batching are checked with the graph;
an export that disagrees beyond tolerance is refused and ``dest`` is left as it was
(``checkpoint.atomic_dir``). Tolerances: float32 within 1e-4 of each logit (relative to its size,
at least 1); int8 and fp16 the same decision on at least 99% of the texts and, where labels are
known, at most 0.5 points less accuracy than PyTorch.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import platform
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from .._version import __version__
from ..checkpoint import META_FILE, ONNXRUNTIME, TOKENIZER_DIR, CheckpointError, atomic_dir, read_meta
from ..data import Columns, DataError, TextDataset, read_dataset
from ..data.validation_sample import VALIDATION_FILE, read_validation_sample
from ..predict import Classifier, resolve_model_path
from ..tokenizers import save_tokenizer
from . import contrib, fusion
from .graph import OPSET, example_batch, export_graph
from .quantize import PRECISIONS, default_precision, int8_candidates, quantize
from .runtime import ONNX_FILE, OnnxRunner, batch_tokens, require_onnxruntime

log = logging.getLogger(__name__)

EXPORT_VERSION = 1  # the layout of an exported folder (``export.format`` in classiformer.json)
FP32_TOLERANCE = 1e-4  # |delta logit| / max(1, |logit|)
MIN_AGREEMENT = 0.99  # int8 / fp16: share of texts with the same decision
MAX_ACCURACY_DROP = 0.005  # int8 / fp16, where labels are known: 0.5 points
VERIFY_LIMIT = 2000  # texts of a calibration file used for the parity check

# Texts for the parity check when no data is given: short and long, punctuation, digits, unknown
# words, and (built in probe_texts) repetitions past any model's length limit, so the padded,
# truncated and chunked paths all run.
PROBES = [
    "Stocks rallied as oil prices fell for a third day.",
    "The team scored twice in the second half to win the league.",
    "A new chip doubles battery life in phones and laptops.",
    "I loved this film: the acting, the music, everything!",
    "Worst purchase ever. It broke after two days and support never answered.",
    "ok",
    "?",
    "Zxqv blorp 12345 #hashtag @user https://example.com/path?q=1",
    "the the the the the",
    "Scientists report that the probe reached orbit on Tuesday, three weeks ahead of schedule.",
    "Central bank raises interest rates by 0.25 points; markets shrug.",
    "An absolutely wonderful, heart-warming story that drags in the middle but ends beautifully.",
    "Match postponed after heavy rain; the coach says the players are ready for Sunday.",
    "Software update fixes the security hole researchers found in the router firmware.",
    "Prices of wheat and corn climbed after the drought warning.",
    "Not bad at all, though not great either.",
]


class ExportError(ValueError):
    """An export was refused (its parity check failed) or cannot be made; nothing was replaced."""


@dataclass
class Parity:
    """PyTorch vs ONNX Runtime on the same texts."""

    source: str  # where the texts came from
    texts: int
    max_abs_diff: float  # max |delta logit|
    max_rel_diff: float  # max |delta logit| / max(1, |logit|)
    agreement: float  # share of texts with the same decision (multi-label: the same label set)
    accuracy_pytorch: float | None = None  # where labels are known
    accuracy_onnx: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        acc = ""
        if self.accuracy_pytorch is not None and self.accuracy_onnx is not None:
            acc = f"; accuracy {100 * self.accuracy_pytorch:.2f}% (PyTorch) vs {100 * self.accuracy_onnx:.2f}% (ONNX)"
        return (f"{self.texts} texts ({self.source}): max |delta logit| {self.max_abs_diff:.3g} "
                f"(relative {self.max_rel_diff:.3g}), same decision on {100 * self.agreement:.2f}%{acc}")

    def failure(self, precision: str) -> str | None:
        """Why this parity is beyond the tolerance of ``precision``, or None when it is within."""
        if precision == "fp32":
            if not self.max_rel_diff <= FP32_TOLERANCE:  # NaN fails too
                return (f"float32 logits differ by up to {self.max_rel_diff:.3g} (relative), more than "
                        f"{FP32_TOLERANCE:g}")
            return None
        if not self.agreement >= MIN_AGREEMENT:
            return f"{precision} decisions agree with PyTorch on {100 * self.agreement:.2f}% of texts, under {100 * MIN_AGREEMENT:g}%"
        if self.accuracy_pytorch is not None and self.accuracy_onnx is not None:
            drop = self.accuracy_pytorch - self.accuracy_onnx
            if drop > MAX_ACCURACY_DROP + 1e-12:
                return f"{precision} loses {100 * drop:.2f} points of accuracy, more than {100 * MAX_ACCURACY_DROP:g}"
        return None


@dataclass
class ExportReport:
    folder: Path
    precision: str
    opset: int
    parity: Parity
    bytes: int  # size of model.onnx
    fp32_bytes: int  # size of the float32 graph

    def summary(self) -> str:
        ratio = f" ({100 * self.bytes / self.fp32_bytes:.0f}% of float32)" if self.precision != "fp32" else ""
        return (f"exported {self.precision} ONNX model (opset {self.opset}) to {self.folder}: "
                f"{self.bytes / 2**20:.1f} MiB{ratio}\nparity: {self.parity.summary()}")


def probe_texts() -> list[str]:
    """The built-in probe texts, plus long ones (every probe joined, repeated past 512 words)."""
    long = " ".join(PROBES)
    return [*PROBES, long, " ".join([long] * 6), " ".join(reversed(PROBES)) * 3]


def stored_validation(folder: Path) -> Path | None:
    """The validation examples kept by the run that ``folder`` (a checkpoint, ``RUN/best``) belongs
    to, or None (a checkpoint outside a run folder, or a run from before they were kept)."""
    for run in (folder, folder.parent):
        if (run / VALIDATION_FILE).is_file():
            return run / VALIDATION_FILE
    return None


def verification_data(clf: Classifier, calibration: Path | None, limit: int = VERIFY_LIMIT,
                      validation: Path | None = None) -> tuple[list[str], list[Any] | None, str]:
    """(texts, labels or None, what they are) for the parity check: the run's stored
    ``validation`` examples (:func:`stored_validation`), else the first ``limit`` rows of
    ``calibration`` (read with the columns the model's training data was read with; labels used
    when present), else :func:`probe_texts`."""
    if validation is not None:
        kept = read_validation_sample(validation)
        stored: list[Any] | None = kept.label_sets if clf.multi_label else kept.labels
        if stored is None:
            raise ExportError(f"{validation}: {'single' if clf.multi_label else 'multi'}-label examples, "
                              f"but the model is {'multi' if clf.multi_label else 'single'}-label")
        return list(kept.texts[:limit]), list(stored)[:limit], f"the run's validation examples ({validation})"
    if calibration is None:
        return probe_texts(), None, "built-in probe texts"
    columns = Columns(**clf.meta.data) if clf.meta.data else Columns()
    try:
        ds: TextDataset = read_dataset(calibration, columns)
        raw: Any = ds.label_sets if clf.multi_label else ds.labels
        labels: list[Any] | None = list(raw)[:limit] if raw else None
    except DataError as e:
        log.info("%s: read without labels (%s)", calibration, e)
        ds, labels = read_dataset(calibration, columns, labelled=False), None
    if not ds.texts:
        raise ExportError(f"{calibration}: no texts to verify the export with")
    return list(ds.texts[:limit]), labels, f"{calibration}"


def compare(torch_clf: Classifier, onnx_clf: Classifier, texts: list[str], labels: list[Any] | None, source: str) -> Parity:
    """Classify ``texts`` with both and measure how far apart they are."""
    a = torch_clf.logits(texts)
    b = onnx_clf.logits(texts)
    diff = np.abs(a.astype(np.float64) - b.astype(np.float64))
    rel = diff / np.maximum(1.0, np.abs(a))
    pa, pb = torch_clf.predict_proba(texts), onnx_clf.predict_proba(texts)
    da, db = torch_clf.decisions(pa), onnx_clf.decisions(pb)
    agreement = float(np.mean([x == y for x, y in zip(da, db)]))
    acc_a = acc_b = None
    if labels is not None:
        def accuracy(decisions: list[Any]) -> float:
            if torch_clf.multi_label:  # label-wise (Hamming) accuracy
                hits = [len(set(d) ^ set(y)) for d, y in zip(decisions, labels)]
                return 1.0 - float(np.sum(hits)) / (len(labels) * len(torch_clf.labels))
            return float(np.mean([d == y for d, y in zip(decisions, labels)]))

        acc_a, acc_b = accuracy(da), accuracy(db)
    worst = float(diff.max(initial=0.0)) if np.isfinite(diff).all() else math.inf
    return Parity(source, len(texts), worst, float(rel.max(initial=0.0)) if np.isfinite(rel).all() else math.inf,
                  agreement, acc_a, acc_b)


def _check_destination(dest: Path, source: Path) -> None:
    """``dest`` may be new, empty, or an earlier export; never the checkpoint or its run folder."""
    d, s = dest.resolve(), source.resolve()
    if d == s or d in s.parents:
        raise ExportError(f"{dest}: that is the model being exported (or its run folder); choose another output folder")
    if dest.exists():
        if not dest.is_dir():
            raise ExportError(f"{dest}: exists and is not a folder")
        if any(dest.iterdir()):
            meta_path = dest / META_FILE
            try:
                earlier = read_meta(dest) if meta_path.exists() else None
            except CheckpointError:
                earlier = None
            if earlier is None or earlier.runtime != ONNXRUNTIME:
                raise ExportError(f"{dest}: exists and is not an exported model; choose another output folder "
                                  "(an earlier export there would be replaced)")


def _write_hf_layout(clf: Classifier, folder: Path) -> None:
    """config.json and tokenizer files for Optimum and ``AutoTokenizer``: the encoder's Hugging Face
    config as a sequence classifier of our labels."""
    model: Any = clf.model
    hf_config = model.hf.config.__class__.from_dict(model.hf.config.to_dict())
    labels = clf.labels
    hf_config.architectures = [f"{type(model.encoder).__name__.removesuffix('Model')}ForSequenceClassification"]
    hf_config.id2label = dict(enumerate(labels))
    hf_config.label2id = {lbl: i for i, lbl in enumerate(labels)}
    hf_config.num_labels = len(labels)
    hf_config.problem_type = clf.meta.problem_type
    hf_config.save_pretrained(str(folder))
    tok: Any = getattr(clf.tokenizer, "tok", None)
    if tok is not None:
        tok.save_pretrained(str(folder))


def export_model(
    source: str | Path,
    dest: str | Path,
    precision: str = "auto",
    opset: int = OPSET,
    calibration: str | Path | None = None,
    threads: int | None = None,
    static: bool | None = None,
    fuse: bool | None = None,
) -> ExportReport:
    """Export the checkpoint at ``source`` (a checkpoint or run folder) to ``dest``.

    ``precision``: ``fp32``, ``int8`` (ONNX Runtime's quantization of the matrix products and
    embeddings; ``static`` uses ``calibration`` texts for fixed activation scales), ``fp16``, or
    ``auto`` (:func:`quantize.default_precision`: what this CPU and model family run best).
    ``calibration``: a data file whose texts (and labels, when it has them) verify the export, and
    calibrate static int8. ``fuse``: ONNX Runtime's fused operators; None for the family's default.
    The from-scratch transformer's blocks are written with fused attention and residual LayerNorms
    (``contrib.py``), on by default as they run faster; BERT-like pretrained encoders go through
    ONNX Runtime's transformer optimizer (``fusion.py``), off by default, as it was no faster on
    short texts and its int8 file is larger. Raises :class:`ExportError` when the
    parity check fails."""
    require_onnxruntime()
    folder = resolve_model_path(source)
    dest = Path(dest)
    _check_destination(dest, folder)
    clf = Classifier.load(folder, device="cpu")
    if clf.model is None:
        raise ExportError(f"{folder}: already an exported model; export the PyTorch checkpoint it came from")
    if precision == "auto":
        precision = default_precision(clf.meta.family)
        log.info("precision: %s (chosen for this CPU and a %s model)", precision, clf.meta.family)
    if precision not in PRECISIONS:
        raise ExportError(f"precision must be one of {['auto', *PRECISIONS]}, got {precision!r}")
    calib = Path(calibration) if calibration is not None else None
    if static and precision != "int8":
        raise ExportError(f"static quantization is for int8, not {precision}")
    if static and calib is None:
        raise ExportError("static int8 needs --calibration FILE: the texts that fix the activation scales")
    validation = stored_validation(folder)
    texts, labels, what = verification_data(clf, calib, validation=validation)
    # static int8's activation scales come from --calibration, whichever texts verify the export
    # (without stored validation examples those are the same rows, already read)
    calib_texts = (texts if validation is None else verification_data(clf, calib)[0]) if static else []
    model: Any = clf.model.float().eval()
    tok = clf.tokenizer
    special = (list(getattr(tok, "prefix", [])), list(getattr(tok, "suffix", [])))
    example = example_batch(tok.pad_id, tok.vocab_size, tok.max_length, special)
    report: dict[str, Any] = {}

    fused = bool(fuse) and clf.meta.family == "hf" and fusion.fusable(model)
    fused_blocks = fuse is not False and contrib.fusable(model)

    def write(tmp: Path) -> None:
        fp32 = tmp / "model.fp32.onnx"
        from ..explain import eager_attention

        fusions: dict[str, int] = {}
        if fused_blocks:
            with contrib.fused_blocks(model) as fusions:
                export_graph(model, fp32, example, opset)
        else:
            # Traced with eager attention, the pattern ONNX Runtime's fusions recognise (fusion.py).
            with eager_attention(model) if fused else contextlib.nullcontext():
                export_graph(model, fp32, example, opset)
            fusions = fusion.fuse(fp32, model) if fused else {}
        report["fp32_bytes"] = fp32.stat().st_size
        save_tokenizer(tok, tmp / TOKENIZER_DIR)
        if clf.meta.family == "hf":
            _write_hf_layout(clf, tmp)
        import onnxruntime
        import torch

        info: dict[str, Any] = {
            "format": EXPORT_VERSION, "opset": opset, "precision": precision,
            "exporter": f"torch.onnx (TorchScript) {torch.__version__}", "onnxruntime": onnxruntime.__version__,
            "classiformer": __version__, "source": str(folder), "cpu": platform.processor() or platform.machine(),
            "inputs": ["input_ids", "attention_mask"], "outputs": ["logits"],
            "cpu_batch_tokens": getattr(model, "cpu_batch_tokens", None), "fused_operators": fusions,
        }
        meta = replace(clf.meta, runtime=ONNXRUNTIME, export=info, tokenizer=tok.to_config(), extra=dict(clf.meta.extra))
        # int8: the smallest settings first; a candidate the parity check refuses gives way to the next.
        candidates: list[dict[str, Any] | None] = list(int8_candidates()) if precision == "int8" else [None]
        refused: list[str] = []
        for settings in candidates:
            if precision == "fp32":
                fp32.replace(tmp / ONNX_FILE)
                applied: dict[str, Any] = {}
            else:
                calib_ids = [tok.encode(calib_texts[i : i + 64]) for i in range(0, min(len(calib_texts), 512), 64)] if static else None
                applied = quantize(fp32, tmp / ONNX_FILE, precision, tok.pad_id, calib_ids, static=bool(static),
                                   settings=settings)
            runner = OnnxRunner(tmp / ONNX_FILE, tok.pad_id, threads, batch_tokens(info["cpu_batch_tokens"]))
            onnx_clf = Classifier(runner, tok, meta, "cpu", clf.batch_size, tmp)
            onnx_clf.thresholds = clf.thresholds
            parity = compare(clf, onnx_clf, texts, labels, what)
            log.info("parity (%s): %s", applied or precision, parity.summary())
            why = parity.failure(precision)
            if why is None:
                break
            refused.append(f"{why} ({parity.summary()}){' with ' + str(applied) if applied else ''}")
        else:
            raise ExportError(f"export refused, {dest} left as it was: " + "; then ".join(refused))
        fp32.unlink(missing_ok=True)
        info.update(applied)
        info["verification"] = parity.to_dict()
        if refused:
            info["refused_settings"] = refused
        (tmp / META_FILE).write_text(meta.to_json(), encoding="utf-8")
        report["parity"], report["bytes"] = parity, (tmp / ONNX_FILE).stat().st_size

    atomic_dir(dest, write)
    return ExportReport(dest, precision, opset, report["parity"], report["bytes"], report["fp32_bytes"])


def export_info(folder: Path) -> dict[str, Any]:
    """What ``classiformer.json`` says about an exported folder (for ``describe``-like output)."""
    meta = json.loads((Path(folder) / META_FILE).read_text(encoding="utf-8"))
    return dict(meta.get("export") or {})
