"""classiformer distill: train a small from-scratch student on a trained teacher's soft targets."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..config import PRESETS, ConfigError, resolve_config
from ..data import DataError, TextDataset, check_labels_known, read_dataset
from ..distill import (
    DEFAULT_ALPHA,
    DEFAULT_STUDENT,
    DEFAULT_STUDENTS,
    DEFAULT_TEMPERATURE,
    RNN_MAX_MEAN_WORDS,
    default_students,
    distill_students,
)
from ..predict import Classifier
from ..tracking import start_tracking
from .common import (
    add_data_options,
    add_runtime_options,
    add_tracking_options,
    apply_runtime,
    columns_from_args,
    load_split,
    override_sections,
    print_test_report,
    rel,
    require,
)
from .train_cmd import OVERRIDES

# Student flags: train's overrides, less those that only pretrained encoders take.
PRETRAINED_ONLY = {"--long-text", "--pooling", "--unfreeze-top", "--attention-dropout", "--feature-cache-mb", "--layer-decay"}
STUDENT_OVERRIDES = [o for o in OVERRIDES if o[0] not in PRETRAINED_ONLY]
STUDENT_PRESETS = sorted(k for k, v in PRESETS.items() if v.family != "hf")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "distill",
        help="train a small, fast model on a trained teacher's predictions (knowledge distillation)",
        description="Train a from-scratch student on the soft targets of one or more trained TEACHER models (several: "
        "their probabilities are averaged): loss = alpha * T^2 * KL(teacher_T || student_T) + (1 - alpha) * "
        "cross-entropy on gold labels (Hinton et al., 2015). The teacher labels --train, --unlabeled and --augment "
        "variants once; its logits are cached in the run folder. The student is an ordinary run: evaluate, predict, "
        "serve, explain and calibrate take it as they take any other.",
        epilog="example: classiformer distill runs/ag_news_minilm --train train.csv -o runs/ag_news_student "
        "(trains base and rnn-attention, keeps the better); --student lesson --augment 4 for one preset",
    )
    p.add_argument("teachers", nargs="+", metavar="TEACHER",
                   help="trained model (run or checkpoint folder, or a folder classiformer export wrote: on a CPU "
                        "without bf16 units an int8 export labels about twice as fast); several are an ensemble")
    add_data_options(p, train=True)
    p.add_argument("--unlabeled", metavar="FILE", action="append",
                   help="texts without labels for the teacher to label: a .txt file (one text per line) or a data file "
                   "read with the --text-column/--header options (labels, if any, are ignored); repeatable. In-domain texts of "
                   "the shape you will predict help most: 40,000 / 80,000 unlabelled movie-review sentences took the "
                   "SST-2 student from 86.2 to 87.0 / 87.7%% (docs/benchmarks.md, Distillation)")
    p.add_argument("--augment", type=int, default=0, metavar="N",
                   help="add N synthetic variants per text (masking, word replacement, n-gram sampling; Tang et al., "
                   "2019) to the transfer set (default: 0)")
    p.add_argument("--alpha", type=float, default=DEFAULT_ALPHA,
                   help=f"weight of the teacher's term; 1 - alpha weighs the gold labels (default: {DEFAULT_ALPHA})")
    p.add_argument("--temperature", type=float, default=DEFAULT_TEMPERATURE,
                   help=f"softmax temperature T of the soft targets (default: {DEFAULT_TEMPERATURE})")
    p.add_argument("--teacher-batch-size", type=int, default=64, help="batch size of the teacher's labelling pass")
    g = p.add_argument_group("student")
    g.add_argument("--student", default=None, choices=["auto", *STUDENT_PRESETS], metavar="PRESET",
                   help=f"the student's recipe: {', '.join(STUDENT_PRESETS)}, or auto: train {' and '.join(DEFAULT_STUDENTS)} "
                   "and keep the one with the lower validation loss, the other staying in OUTPUT/students/ (the GRU "
                   f"only for texts of at most {RNN_MAX_MEAN_WORDS} words on average: its time grows with length; "
                   f"default: auto; with --config, the file's preset, else {DEFAULT_STUDENT})")
    g.add_argument("--config", metavar="FILE", help="JSON file with sections model/tokenizer/train overriding the preset")
    for flag, section, _key, typ, help_ in STUDENT_OVERRIDES:
        (g if section != "train" else p).add_argument(flag, type=typ, default=None, help=help_)
    o = p.add_argument_group("output")
    o.add_argument("--output", "-o", required=True, help="the student's run folder")
    o.add_argument("--overwrite", action="store_true",
                   help="replace an existing run in --output (the teacher's cached logits there are reused)")
    add_tracking_options(p)
    add_runtime_options(p)
    p.set_defaults(func=run)


def read_unlabeled(path: str, args: argparse.Namespace) -> TextDataset:
    """Texts of an ``--unlabeled`` file: one per line of a .txt file, else the text columns of a
    data file."""
    p = Path(path)
    if p.suffix.lower() == ".txt":
        try:
            lines = p.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            raise DataError(f"{p}: file not found") from None
        except UnicodeDecodeError as e:
            raise DataError(f"{p}: not UTF-8 text ({e})") from None
        kept = [(i + 1, t) for i, t in enumerate(lines) if t.strip()]
        return TextDataset([t for _, t in kept], None, source=str(p), lines=[n for n, _ in kept])
    return read_dataset(p, columns_from_args(args), skip_bad_rows=args.skip_bad_rows, labelled=False)


def run(args: argparse.Namespace) -> int:
    apply_runtime(args)
    tracker = start_tracking(args.report_to, args.tracking_uri)  # a missing backend fails before anything else
    sections = override_sections(args, STUDENT_OVERRIDES)
    train = require(load_split(args, "train"), "train")
    student = args.student or ("auto" if not args.config else None)
    presets = default_students(train) if student == "auto" else [student or DEFAULT_STUDENT]
    configs = []
    for preset in presets:
        try:
            configs.append(resolve_config(preset, args.config, model=sections["model"], tokenizer=sections["tokenizer"],
                                          train=sections["train"]))
        except ConfigError as e:
            if student != "auto":
                raise
            raise ConfigError(f"{e} (--student auto trains {' and '.join(presets)} with the same flags: name one "
                              "with --student to give it settings the other does not have)") from None
    for config in configs:
        if config.family == "hf":
            raise ConfigError(f"the student is trained from scratch; {args.config} names the pretrained preset {config.preset!r}")
    validation = load_split(args, "validation")
    test = load_split(args, "test")
    unlabeled: list[str] = []
    for path in args.unlabeled or []:
        unlabeled.extend(read_unlabeled(path, args).texts)
    if test is not None:  # before training, not after its last epoch
        check_labels_known(test, train.label_names())
    run_dir = Path(args.output)
    with tracker:
        result = distill_students(
            args.teachers, configs, train, run_dir, validation=validation, unlabeled=unlabeled, augment=args.augment,
            alpha=args.alpha, temperature=args.temperature, device=args.device, teacher_device=args.device,
            teacher_batch_size=args.teacher_batch_size, overwrite=args.overwrite, progress=not args.no_progress,
            callbacks=[tracker] if tracker else [],
        )
        return _report(args, result, run_dir, test, tracker)


def _report(args: argparse.Namespace, result: Any, run_dir: Path, test: TextDataset | None, tracker: Any) -> int:
    record = Classifier.load(result.best_dir, device="cpu").meta.extra.get("distillation", {})
    choice = record.get("student_choice")
    if choice:
        losses = ", ".join(f"{n} {v:.4f}" for n, v in choice["validation_log_loss"].items())
        print(f"student: {choice['chosen']} (validation log loss {losses}; the others in {rel(run_dir / 'students')})")
    ts = record.get("transfer_set", {})
    print(f"transfer set: {ts.get('texts', 0):,} texts ({ts.get('gold', 0):,} labelled, {ts.get('unlabeled', 0):,} "
          f"unlabelled, {ts.get('augmented', 0):,} variants); teacher labelling {record.get('teacher_labelling_seconds', 0):.1f} s")
    score = "micro-F1" if result.history and "val_micro_f1" in result.history[-1] else "accuracy"
    print(f"trained {len(result.history)} epoch(s) at {result.train_samples_per_sec:,.0f} samples/s; "
          f"best validation {score} {result.best_val_accuracy:.4f} (epoch {result.best_epoch})")
    print(f"model: {rel(result.best_dir)}   (last: {rel(result.last_dir)}, log: {rel(run_dir / 'metrics.jsonl')})")
    if test is not None:
        clf = Classifier.load(result.best_dir, device=args.device)
        print_test_report(clf, test, run_dir, result, tracker, progress=not args.no_progress)
    return 0
