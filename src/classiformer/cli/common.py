"""Options and helpers shared by several commands."""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..checkpoint import CheckpointError
from ..config import LONG_TEXT_MODES, PRESETS
from ..data import Columns, DataError, TextDataset, load_builtin, read_dataset
from ..data.builtin import BUILTINS
from ..data.label_names import name_labels, parse_label_names
from ..data.streaming import TextStream
from ..evaluate import evaluate, write_evaluation
from ..metrics import format_calibration, format_multilabel_report, format_report, imbalance_note
from ..predict import Classifier
from ..training import TrainingInterrupted, TrainResult
from .runtime_options import add_runtime_options, apply_runtime  # noqa: F401  (used by every command)


def add_data_options(p: argparse.ArgumentParser, *, train: bool) -> None:
    g = p.add_argument_group("data")
    g.add_argument("--dataset", choices=sorted(BUILTINS), help="a built-in dataset (downloaded and cached on first use)")
    g.add_argument("--data-dir", help="cache root for built-in datasets (default: $CLASSIFORMER_DATA or ~/.cache/classiformer/data)")
    if train:
        g.add_argument("--train", metavar="PATH", help="training data: .csv, .tsv, .jsonl[.gz], .parquet or a folder with one sub-folder per class")
        g.add_argument("--validation", metavar="PATH", help="validation data (default: a stratified split of --train)")
    g.add_argument("--test", metavar="PATH", help="test data to evaluate on" + (" after training" if train else ""))
    # Without these options, evaluate/calibrate read files as the model's training data was read.
    def default(plain: str) -> str:
        return f"(default: {plain})" if train else f"(default: as the model's training data was read; else {plain})"

    g.add_argument("--label-column", default=None,
                   help="label column name, or 0-based index with --no-header " + default("label; 0 with --no-header"))
    g.add_argument("--text-column", action="append", dest="text_columns", metavar="COL",
                   help="text column (repeat to join several, e.g. title and description) " + default("text; 1 with --no-header"))
    g.add_argument("--header", action=argparse.BooleanOptionalAction, default=None,
                   help="whether CSV/TSV files start with a header row; without one, columns are 0-based indices "
                   + default("with a header"))
    g.add_argument("--label-names", metavar="NAMES|FILE.json",
                   help="class names for label codes: comma-separated, one per label in label order (labels 1,2,3,4 "
                   "-> World,Sports,Business,Sci/Tech), or a JSON file mapping each raw label to its name")
    g.add_argument("--label-sep", metavar="SEP", default=None,
                   help="multi-label CSV/TSV: the label field lists labels joined by SEP (e.g. '|'); an empty field "
                   "is a text with no label. JSONL needs none: a list in the label field is a label set "
                   + default("none"))
    g.add_argument("--skip-bad-rows", action="store_true", help="skip malformed rows (and report how many) instead of failing")


MODES = ("finetune", "frozen", "partial")


def add_model_options(p: argparse.ArgumentParser, title: str = "model") -> argparse._ArgumentGroup:
    """--preset, --model, --mode and --config: what a run starts from (train and tune)."""
    g = p.add_argument_group(title)
    g.add_argument("--preset", default=None, choices=sorted(PRESETS),
                   help="model recipe (default: base, the --model family's own preset, or the --mode preset with a "
                   "pretrained --model; see 'classiformer presets')")
    g.add_argument("--model", metavar="NAME",
                   help="rnn-attention: the lesson's recurrent baseline trained from scratch (bidirectional GRU with "
                   "additive attention pooling); transformer: the from-scratch transformer (the default); anything "
                   "else starts from a pretrained encoder: minilm (offline), a Hugging Face hub id or a local folder")
    g.add_argument("--mode", choices=MODES, default=None,
                   help="with a pretrained --model: finetune (end to end, default), frozen (features + linear head) or partial")
    g.add_argument("--config", metavar="FILE", help="JSON file with sections model/tokenizer/train overriding the preset")
    return g


def add_tracking_options(p: argparse.ArgumentParser) -> None:
    """``--report-to`` and ``--tracking-uri``; pass their values to ``tracking.start_tracking``."""
    g = p.add_argument_group("tracking")
    g.add_argument("--report-to", action="append", metavar="BACKENDS",
                   help="report the run to none (default), tensorboard (event files in RUN/tensorboard/) and/or mlflow "
                   "(params, metrics, plots, the model); several comma-separated or repeated; needs "
                   "pip install 'classiformer[tracking]'")
    g.add_argument("--tracking-uri", metavar="URI",
                   help="MLflow tracking store or server, e.g. http://127.0.0.1:5000 or sqlite:///runs/mlflow.db "
                   "(default: MLflow's own: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db in the working directory)")


def add_inference_options(p: argparse.ArgumentParser) -> None:
    """Options of commands that load a trained model to predict with it."""
    p.add_argument("model", help="run folder or checkpoint folder")
    p.add_argument("--batch-size", type=int, default=256, help="inference batch size")
    p.add_argument("--long-text", choices=LONG_TEXT_MODES, default=None,
                   help="pretrained encoders: texts over the length limit are truncated, cut to head+tail, or "
                   "split into overlapping chunks whose logits are averaged (default: the model's setting)")
    half = p.add_mutually_exclusive_group()
    half.add_argument("--bf16", action="store_true", help="bfloat16 weights (faster on CPUs with bf16 support and on GPUs)")
    half.add_argument("--fp16", action="store_true", help="float16 weights (GPUs without bf16, e.g. T4, V100)")
    p.add_argument("--threshold", type=float, default=None,
                   help="multi-label models: predict every label whose probability reaches this, instead of the "
                   "thresholds tuned on the validation split")


def load_classifier(args: argparse.Namespace) -> Classifier:
    return Classifier.load(args.model, device=args.device, batch_size=args.batch_size, bf16=args.bf16,
                           long_text=args.long_text, fp16=args.fp16, threshold=getattr(args, "threshold", None),
                           threads=getattr(args, "threads", 0) or None)


def columns_from_args(args: argparse.Namespace, stored: Columns | None = None) -> Columns:
    """The columns named by the data options; each option not given comes from ``stored`` (how the
    model's training data was read), or else from the defaults."""
    header = args.header if args.header is not None else (stored.header if stored else True)

    def col(c: str) -> str | int:
        return int(c) if not header and c.isdigit() else c

    if args.text_columns:
        texts = [col(c) for c in args.text_columns]
    else:
        texts = list(stored.text) if stored else [col("text" if header else "1")]
    label: str | int | None
    if args.label_column is not None:
        label = col(args.label_column)
    else:
        label = stored.label if stored else col("label" if header else "0")
    label_map = getattr(args, "label_map", None) or (stored.label_map if stored else None)
    label_sep = getattr(args, "label_sep", None) or (stored.label_sep if stored else None)
    return Columns(label=label, text=texts, header=header, label_map=label_map, label_sep=label_sep)


def stored_columns(clf: Classifier) -> Columns | None:
    """How ``clf``'s training data was read (None for models trained before this was kept, or on
    a folder or a built-in dataset read without column options)."""
    data = clf.meta.data
    if not data:
        return None
    try:
        return Columns(**data)
    except TypeError as e:
        raise CheckpointError(f"{clf.path}: corrupted: data {data} does not describe columns ({e})") from None


def input_columns(args: argparse.Namespace, clf: Classifier) -> tuple[list[str | int], bool]:
    """Text columns and header of a ``--input`` file to predict or explain: the options given,
    and for those not given, the layout of the model's training data (else ``text`` / column 0)."""
    stored = stored_columns(clf)
    header = not args.no_header if args.no_header else (stored.header if stored else True)
    if args.text_columns:
        return [int(c) if not header and c.isdigit() else c for c in args.text_columns], header
    if stored is not None and stored.header == header:
        return list(stored.text), header
    return (["text"] if header else [0]), header


SPLITS = ("train", "validation", "test")


def load_split(args: argparse.Namespace, split: str, stored: Columns | None = None) -> TextDataset | None:
    """The dataset for ``split`` (train/validation/test) named on the command line, or None.
    ``stored``: the columns a trained model was read with, for the options not given.
    ``--label-names`` given as a list is fixed by the first split read (the training data) and
    kept on ``args.label_map`` for the others."""
    path = getattr(args, split, None)
    if path:
        if args.label_names and getattr(args, "label_map", None) is None:
            names = parse_label_names(args.label_names)
            if isinstance(names, dict):
                args.label_map = names
            else:
                raw = replace(columns_from_args(args, stored), label_map=None)
                ds = read_dataset(path, raw, skip_bad_rows=args.skip_bad_rows)
                ds, args.label_map = name_labels(ds, names)
                return ds
        return read_dataset(path, columns_from_args(args, stored), skip_bad_rows=args.skip_bad_rows)
    if args.dataset and split in BUILTINS[args.dataset].files:
        if args.label_names:
            raise DataError(f"--label-names is for files of your own; {args.dataset} names its classes itself")
        # Every split this command reads is fetched now, so an offline user hears of all missing files at once.
        later = tuple(s for s in SPLITS if s != split and s in vars(args) and not getattr(args, s))
        return load_builtin(args.dataset, split, args.data_dir, skip_bad_rows=args.skip_bad_rows, also=later)
    return None


def require(ds: TextDataset | None, what: str) -> TextDataset:
    if ds is None:
        raise DataError(f"no {what} data: pass --dataset NAME or --{what} PATH")
    return ds


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, ensure_ascii=False))


def rel(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def best_validation(result: TrainResult, train: TextDataset | TextStream) -> str:
    """The best epoch's validation score for the summary: micro-F1 (multi-label), accuracy, or
    when the training classes are imbalanced (``metrics.imbalance``) macro-F1 first, beside
    accuracy, with a line saying why (a stream's classes counted by its first pass)."""
    if isinstance(train, TextStream):
        counts = None if train.is_multi_label else train.label_counts
    else:
        counts = Counter(train.labels) if train.labels is not None else None
    # From the best epoch's record: the measure that chose it (TrainConfig.monitor) may be another.
    best = next((h for h in result.history if h.get("epoch") == result.best_epoch), {})
    if "val_micro_f1" in best:
        return f"micro-F1 {best['val_micro_f1']:.4f}, macro-F1 {best['val_macro_f1']:.4f} (epoch {result.best_epoch})"
    plain = f"accuracy {best.get('val_accuracy', result.best_val_accuracy):.4f} (epoch {result.best_epoch})"
    note = imbalance_note(counts, " in the training data") if counts is not None else None
    if note is None or "val_macro_f1" not in best:
        return plain
    return f"macro-F1 {best['val_macro_f1']:.4f}, {plain}\n{note}"


def report_text(report: dict[str, Any], paths: dict[str, Path]) -> str:
    """The metrics table for this terminal: the confusion matrix only when it fits its width."""
    if report.get("problem_type") == "multi_label_classification":
        return format_multilabel_report(report)
    width = shutil.get_terminal_size((120, 24)).columns
    return format_report(report, width=width, matrix_path=rel(paths["confusion_matrix"]))


def print_test_report(clf: Classifier, test: TextDataset, run_dir: Path, result: TrainResult, tracker: Any,
                      progress: bool, report: dict[str, Any] | None = None) -> None:
    """Evaluate a finished run's best model on the test split (unless ``report`` is that
    evaluation already), write metrics.json and the plots into the run folder, log them to the
    tracker and print the report (train and distill)."""
    if report is None:
        report = evaluate(clf, test, progress=progress)
    paths = write_evaluation(report, run_dir, {"best_epoch": result.best_epoch, "best_val_accuracy": result.best_val_accuracy})
    tracker.log_test(report, paths)
    print()
    print(f"test set: {test.source}")
    print(report_text(report, paths))
    print(format_calibration(report))
    print()
    for what, path in paths.items():
        print(f"{what}: {rel(path)}")


def _terminated(signum: int, frame: object) -> None:
    raise TrainingInterrupted(f"stopped by {signal.Signals(signum).name}", signum, saved=False)


def with_sigterm(run: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Run a training command so that SIGTERM (a scheduler, ``timeout``, ``docker stop``) ends it as
    Ctrl-C does: with a message and the shell's status for it (143). While training, fit() saves
    last/ first. Off the main thread (tests calling main() from a thread) signals cannot be set."""
    if threading.current_thread() is not threading.main_thread():
        return run(args)
    previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        return run(args)
    finally:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


def override_sections(args: argparse.Namespace, table: list[tuple[str, str, str, Any, str]]) -> dict[str, dict[str, Any]]:
    """The config sections (model, tokenizer, train) the flags of ``table`` set: rows of (flag,
    section, key, type, help); flags left at None are not overrides."""
    sections: dict[str, dict[str, Any]] = {"model": {}, "tokenizer": {}, "train": {}}
    for flag, section, key, _typ, _help in table:
        value = getattr(args, flag.lstrip("-").replace("-", "_"))
        if value is not None:
            sections[section][key] = value
    return sections
