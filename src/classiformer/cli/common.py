"""Options and helpers shared by several commands."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path
from typing import Any

from ..config import LONG_TEXT_MODES
from ..data import Columns, DataError, TextDataset, load_builtin, read_dataset
from ..data.builtin import BUILTINS
from ..data.label_names import name_labels, parse_label_names
from ..metrics import format_report
from ..predict import Classifier
from ..runtime import set_threads


def add_data_options(p: argparse.ArgumentParser, *, train: bool) -> None:
    g = p.add_argument_group("data")
    g.add_argument("--dataset", choices=sorted(BUILTINS), help="a built-in dataset (downloaded and cached on first use)")
    g.add_argument("--data-dir", help="cache root for built-in datasets (default: $CLASSIFORMER_DATA or ~/.cache/classiformer/data)")
    if train:
        g.add_argument("--train", metavar="PATH", help="training data: .csv, .tsv, .jsonl[.gz], .parquet or a folder with one sub-folder per class")
        g.add_argument("--validation", metavar="PATH", help="validation data (default: a stratified split of --train)")
    g.add_argument("--test", metavar="PATH", help="test data to evaluate on" + (" after training" if train else ""))
    g.add_argument("--label-column", default="label", help="label column name, or 0-based index with --no-header (default: label)")
    g.add_argument("--text-column", action="append", dest="text_columns", metavar="COL",
                   help="text column (repeat to join several, e.g. title and description; default: text)")
    g.add_argument("--no-header", action="store_true", help="CSV/TSV files have no header row; columns are 0-based indices")
    g.add_argument("--label-names", metavar="NAMES|FILE.json",
                   help="class names for label codes: comma-separated, one per label in label order (labels 1,2,3,4 "
                   "-> World,Sports,Business,Sci/Tech), or a JSON file mapping each raw label to its name")
    g.add_argument("--skip-bad-rows", action="store_true", help="skip malformed rows (and report how many) instead of failing")


def add_runtime_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("runtime")
    g.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 ... (default: auto)")
    g.add_argument("--threads", type=int, default=0, help="CPU threads (default: all available cores)")
    g.add_argument("--no-progress", action="store_true", help="hide progress bars")


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


def load_classifier(args: argparse.Namespace) -> Classifier:
    return Classifier.load(args.model, device=args.device, batch_size=args.batch_size, bf16=args.bf16,
                           long_text=args.long_text, fp16=args.fp16)


def apply_runtime(args: argparse.Namespace) -> None:
    set_threads(args.threads)


def columns_from_args(args: argparse.Namespace) -> Columns:
    def col(c: str) -> str | int:
        return int(c) if args.no_header and c.isdigit() else c

    texts = args.text_columns or (["1"] if args.no_header else ["text"])
    label = args.label_column if not (args.no_header and args.label_column == "label") else "0"
    label_map = getattr(args, "label_map", None)
    return Columns(label=col(label), text=[col(c) for c in texts], header=not args.no_header, label_map=label_map)


SPLITS = ("train", "validation", "test")


def load_split(args: argparse.Namespace, split: str) -> TextDataset | None:
    """The dataset for ``split`` (train/validation/test) named on the command line, or None.
    ``--label-names`` given as a list is fixed by the first split read (the training data) and
    kept on ``args.label_map`` for the others."""
    path = getattr(args, split, None)
    if path:
        if args.label_names and getattr(args, "label_map", None) is None:
            names = parse_label_names(args.label_names)
            if isinstance(names, dict):
                args.label_map = names
            else:
                ds = read_dataset(path, columns_from_args(args), skip_bad_rows=args.skip_bad_rows)
                ds, args.label_map = name_labels(ds, names)
                return ds
        return read_dataset(path, columns_from_args(args), skip_bad_rows=args.skip_bad_rows)
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


def report_text(report: dict[str, Any], paths: dict[str, Path]) -> str:
    """The metrics table for this terminal: the confusion matrix only when it fits its width."""
    width = shutil.get_terminal_size((120, 24)).columns
    return format_report(report, width=width, matrix_path=rel(paths["confusion_matrix"]))
