"""classiformer train: train a classifier, then evaluate it on the test set when one is given."""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .. import distributed
from ..cluster import launch
from ..config import FAMILY_PRESETS, ConfigError, load_json_config, resolve_config
from ..data import TextDataset, check_labels_known
from ..data.label_names import parse_label_names
from ..data.overlap import warn_overlap
from ..data.streaming import GZIP_RATIO, STREAMING_THRESHOLD_BYTES, TextStream, should_stream
from ..evaluate import evaluate
from ..predict import Classifier
from ..tracking import Tracker, start_tracking
from ..training import RESUMABLE, ResumeConflict, fit, resume_config
from .common import (
    add_data_options,
    add_model_options,
    add_runtime_options,
    add_tracking_options,
    apply_runtime,
    best_validation,
    columns_from_args,
    load_split,
    override_sections,
    print_test_report,
    rel,
    require,
    with_sigterm,
)

log = logging.getLogger(__name__)

def on_off(value: str) -> bool:
    """A yes/no flag value: on/off, true/false, yes/no, 1/0."""
    v = value.strip().lower()
    if v in ("on", "true", "yes", "1"):
        return True
    if v in ("off", "false", "no", "0"):
        return False
    raise argparse.ArgumentTypeError(f"expected on or off, got {value!r}")


# (flag, config section, key, type, help): each overrides the preset and the --config file.
OVERRIDES: list[tuple[str, str, str, Callable[[str], Any], str]] = [
    ("--tokenizer", "tokenizer", "kind", str, "words (the lesson's vectorizer; a Chinese, Japanese or Thai character is a word) or wordpiece (subwords trained on the data)"),
    ("--vocab-size", "tokenizer", "vocab_size", int, "vocabulary size, reserved ids included"),
    ("--max-length", "tokenizer", "max_length", int, "truncate texts to this many tokens"),
    ("--long-text", "tokenizer", "long_text", str, "pretrained encoders: truncate, head-tail or chunks (texts over --max-length)"),
    ("--pooling", "model", "pooling", str, "frozen mode: cls, pooler or mean"),
    ("--unfreeze-top", "model", "unfreeze_top", int, "partial mode: train the top K encoder layers"),
    ("--attention-dropout", "model", "attention_dropout", float, "finetune/partial: dropout on attention weights in training (default: the checkpoint's; 0 runs the fused attention kernel, much faster on a CPU)"),
    ("--feature-cache-mb", "model", "feature_cache_mb", int, "frozen mode: features of a set above this size are memory-mapped in the run folder (0: always)"),
    ("--embed-dim", "model", "embed_dim", int, "embedding width"),
    ("--heads", "model", "num_heads", int, "attention heads per block"),
    ("--head-dim", "model", "head_dim", int, "width of each head (0: embed-dim / heads)"),
    ("--ff-dim", "model", "ff_dim", int, "feed-forward width"),
    ("--layers", "model", "num_layers", int, "number of encoder blocks"),
    ("--hidden-dim", "model", "hidden_dim", int, "width of the dense ReLU layer before the output (0: none); "
     "for rnn-attention, the state size per direction"),
    ("--dropout", "model", "dropout", float, "dropout rate"),
    ("--token-dropout", "model", "token_dropout", float, "from-scratch transformer: share of training tokens hidden (word dropout)"),
    ("--token-drop", "model", "token_drop", str, "how word dropout hides a token: unk (replaced by the unknown id) or delete (removed; shorter, faster batches)"),
    ("--token-dropout-length", "model", "token_dropout_length", int, "from-scratch transformer: texts shorter than this many tokens delete proportionally fewer words, and none loses most of its words (0: every text at the full rate)"),
    ("--ngram-buckets", "model", "ngram_buckets", int, "from-scratch transformer or rnn-attention: add a linear branch over words and word pairs hashed into this many buckets (0: none)"),
    ("--ngram-scale", "model", "ngram_scale", float, "output multiplier of the n-gram branch (its effective learning-rate factor under Adam)"),
    ("--ngram-aux", "model", "ngram_aux", float, "from-scratch transformer or rnn-attention: weight of a second loss on the n-gram branch alone (the recipe: 1 for single-label, 0 for multi-label)"),
    ("--ngram-idf", "model", "ngram_idf", on_off, "from-scratch transformer or rnn-attention: on/off, the n-gram branch weighs words by inverse document frequency (the recipe: on for up to 20,000 texts of up to 150 words on average)"),
    ("--recipe", "train", "recipe", str, "auto (lesson, base: settings not given here adapt to the data's size, length, "
     "classes and labels, see recipe.py; the choices are logged and stored in config.json) or fixed (the preset as written)"),
    ("--monitor", "train", "monitor", str, "validation measure that picks the best epoch and stops early: accuracy, "
     "macro_f1, micro_f1 or loss (auto: accuracy, micro-F1 for multi-label; the recipe picks macro-F1 for skewed or "
     "multi-label data, else the loss)"),
    ("--epochs", "train", "epochs", int, "maximum epochs"),
    ("--batch-size", "train", "batch_size", int, "examples per batch"),
    ("--lr", "train", "lr", float, "peak learning rate (AdamW)"),
    ("--weight-decay", "train", "weight_decay", float, "AdamW weight decay (matrices only)"),
    ("--layer-decay", "train", "layer_decay", float, "pretrained encoders: each layer learns at this factor of the layer above's rate (1: off)"),
    ("--head-lr", "train", "head_lr", float, "learning rate of the output layers (a pretrained encoder's new classifier); 0: the same as --lr"),
    ("--schedule", "train", "schedule", str, "constant, or linear (warmup then linear decay)"),
    ("--warmup", "train", "warmup", float, "warmup as a fraction of all steps"),
    ("--clip-norm", "train", "clip_norm", float, "clip gradients to this norm (0: off)"),
    ("--grad-accum", "train", "grad_accum", int, "accumulate gradients over this many batches"),
    ("--patience", "train", "patience", int, "stop after this many epochs without validation improvement (0: never)"),
    ("--seed", "train", "seed", int, "random seed (data order, initialisation, dropout)"),
    ("--val-fraction", "train", "val_fraction", float, "share of --train held out for validation when no --validation is given"),
    ("--label-smoothing", "train", "label_smoothing", float, "label smoothing of the cross-entropy loss"),
    ("--checkpoint-every", "train", "checkpoint_every", int, "also save the last checkpoint every N optimizer steps (0: each epoch)"),
    ("--class-weight", "train", "class_weight", str, "single-label: none, balanced (n / (classes x count), for "
     "imbalanced classes) or a JSON file {label: weight} (labels left out weigh 1)"),
    ("--pos-weight", "train", "pos_weight", str, "multi-label: none, or auto (negatives / positives per label, at "
     "most 100) to weigh up rare labels' positives"),
    ("--multi-label-loss", "train", "multilabel_loss", str, "multi-label: bce (binary cross-entropy) or hinge "
     "(one-vs-rest hinge, a linear SVM's loss per label; the recipe's choice for the from-scratch transformer's "
     "n-gram branch, otherwise bce)"),
    ("--hinge-margin", "train", "hinge_margin", float, "multi-label with --multi-label-loss hinge: the margin, in "
     "logits (default 6)"),
    ("--max-steps", "train", "max_steps", int, "--streaming: the budget, in optimizer steps (default: --epochs passes "
     "over the data); a resumed run may raise it"),
    ("--eval-every", "train", "eval_every", int, "--streaming: validate (and save last/, and best/ when better) every "
     "N steps (default: once per pass over the data)"),
    ("--shuffle-window", "train", "shuffle_window", int, "--streaming: examples shuffled and length-bucketed together "
     "(bounds the memory the stream takes)"),
    ("--loader-workers", "train", "loader_workers", int, "--streaming: DataLoader processes that read and tokenize "
     "the stream (0: the training process itself)"),
    ("--tokenizer-sample", "train", "tokenizer_sample", int, "--streaming: a from-scratch tokenizer is fit on a "
     "seeded sample of this many training texts"),
]

def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a classifier (and evaluate it on --test)",
        description="Train a text classifier. Defaults come from the preset, then --config, then the flags below. "
        "The run folder gets best/ and last/ checkpoints, config.json, metrics.jsonl and, with test data, "
        "metrics.json and plots. Ctrl-C or SIGTERM stops after the current step with the last checkpoint saved "
        "(exit 130 or 143); --resume continues from it exactly, and says so when the run is already complete.",
        epilog="example: classiformer train --dataset ag_news --preset lesson --output runs/ag_news_lesson",
    )
    add_data_options(p, train=True)
    g = add_model_options(p)
    for flag, section, _key, typ, help_ in OVERRIDES:
        (g if section != "train" else p).add_argument(flag, type=typ, default=None, help=help_)
    o = p.add_argument_group("output")
    o.add_argument("--output", "-o", default=None, help="run folder (default: runs/<dataset or file>_<preset>)")
    o.add_argument("--resume", action="store_true",
                   help="continue the run in --output from its last checkpoint, with its own settings: only --epochs "
                   "(the learning-rate schedule is recomputed for the new total), --patience and --checkpoint-every "
                   "may change; other flags that differ are refused")
    o.add_argument("--overwrite", action="store_true", help="replace an existing run in --output")
    p.add_argument("--streaming", action="store_true", default=None,
                   help="read --train as a stream instead of into memory, for data larger than memory (automatic for "
                   f"files over {STREAMING_THRESHOLD_BYTES >> 30} GiB, .gz counted at {GZIP_RATIO}x): a first pass "
                   "finds the labels and holds out the validation rows; training runs for --max-steps steps")
    p.add_argument("--multi-label", action="store_true", default=None,
                   help="one sigmoid per label (binary cross-entropy) even if every text has one label; label lists "
                   "in the data (JSONL lists, --label-sep) make a model multi-label without it")
    half = p.add_mutually_exclusive_group()
    half.add_argument("--bf16", action="store_true", default=None, help="bfloat16 autocast for training and evaluation")
    half.add_argument("--fp16", action="store_true", default=None,
                      help="float16 autocast with loss scaling (GPUs without bf16, e.g. T4, V100)")
    add_tracking_options(p)
    add_runtime_options(p)
    d = p.add_argument_group("distributed")
    d.add_argument("--nproc", type=int, default=None, metavar="N",
                   help="train on N processes of this machine with torch.distributed (DistributedDataParallel), "
                   "started by torch's elastic launcher as 'torchrun --standalone --nproc-per-node N -m classiformer "
                   "train ...' does: gloo on CPUs, NCCL with --device cuda (one GPU per process). Each process takes "
                   "--batch-size examples per step, so the effective batch is N x --batch-size; --lr is not scaled. "
                   "For several machines run torchrun on each (README, 'Training on many processes and machines'); "
                   "CLASSIFORMER_DIST_TIMEOUT (seconds, default 600) bounds how long a process waits for a stuck peer")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """SIGTERM (a scheduler, ``timeout``, ``docker stop``) ends this command as Ctrl-C does: with a
    message and the shell's status for it (143). While training, fit() saves last/ first."""
    return with_sigterm(_run, args)


def _flag_names() -> dict[str, str]:
    names = {f"{section}.{key}": flag for flag, section, key, _typ, _help in OVERRIDES}
    names.update({"train.bf16": "--bf16", "train.fp16": "--fp16", "train.multi_label": "--multi-label", "train.streaming": "--streaming", "model.source": "--model", "model.mode": "--mode",
                  "preset": "--preset", "family": "--model"})
    return names


def _resumed(run_dir: Path, args: argparse.Namespace, sections: dict[str, dict[str, Any]], preset: str | None,
             family: str | None) -> Any:
    """The run's stored configuration with the flags given now; flags that would change what
    cannot change mid-run are refused, by name."""
    changes: dict[str, Any] = {"preset": preset, "family": family}
    file_data = load_json_config(args.config) if args.config else {}
    changes["preset"] = preset or file_data.get("preset")
    for section in sections:
        changes[section] = {**(file_data.get(section) or {}), **sections[section]}
    try:
        return resume_config(run_dir, changes)
    except ResumeConflict as e:
        names = _flag_names()
        listed = ", ".join(f"{names.get(k, k)} ({old!r} -> {new!r})" for k, (old, new) in e.changes.items())
        allowed = ", ".join(names.get(k, k) for k in RESUMABLE)
        raise ConfigError(
            f"{run_dir}: --resume continues the run with its own settings; these would change it: {listed}. "
            f"Only {allowed} may change when resuming; to train with other settings start a new run "
            "(--overwrite, or another --output)"
        ) from None


def _without_nproc(argv: list[str]) -> list[str]:
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == "--nproc":
            skip = True
        elif not a.startswith("--nproc="):
            out.append(a)
    return out


def _stream(args: argparse.Namespace) -> TextStream:
    """The --train file as a stream (data/streaming.py)."""
    if not args.train:
        raise ConfigError("--streaming reads a --train file (.csv, .tsv, .jsonl[.gz] or .parquet)")
    if args.label_names:
        names = parse_label_names(args.label_names)
        if not isinstance(names, dict):
            raise ConfigError("--streaming: give --label-names as a JSON file mapping each label code to its name "
                              "(a list names the codes in sorted order, which a stream does not know before reading it)")
        args.label_map = names
    return TextStream([args.train], columns_from_args(args), skip_bad_rows=args.skip_bad_rows)


def _run(args: argparse.Namespace) -> int:
    if args.nproc is not None and args.nproc < 1:
        raise ConfigError(f"--nproc {args.nproc}: expected at least 1 process")
    if args.nproc and args.nproc > 1:
        if distributed.launched():
            raise ConfigError("--nproc under torchrun: torchrun has started the processes already; drop --nproc")
        launch(_without_nproc(args.argv), args.nproc)  # the same command, in each of N processes
        return 0
    if distributed.launched() and int(os.environ.get("RANK", "0")) != 0:
        logging.getLogger("classiformer").setLevel(logging.WARNING)  # rank 0 alone logs progress
    apply_runtime(args)
    tracker = start_tracking(args.report_to, args.tracking_uri)  # a missing backend fails before anything else
    sections = override_sections(args, OVERRIDES)
    if args.train and not args.streaming and not args.resume and should_stream([args.train]):
        log.info("%s is over %d GiB: streaming it (--streaming)", args.train, STREAMING_THRESHOLD_BYTES >> 30)
        args.streaming = True
    for flag in ("bf16", "fp16", "multi_label", "streaming"):
        if getattr(args, flag):
            sections["train"][flag] = True
    preset, family = args.preset, None
    if args.model in FAMILY_PRESETS and not args.mode:  # a family trained from scratch
        family = args.model
        preset = preset or FAMILY_PRESETS[family]
    elif args.model or args.mode:
        sections["model"]["source"] = args.model
        preset = preset or args.mode or "finetune"
        if args.mode:
            sections["model"]["mode"] = args.mode
    config = resolve_config(
        preset or "base", args.config, model=sections["model"], tokenizer=sections["tokenizer"], train=sections["train"],
        family=family,
    )
    name = args.dataset or Path(args.train or "").name.split(".")[0]
    run_dir = Path(args.output or f"runs/{name}_{config.preset}")
    if args.resume:
        config = _resumed(run_dir, args, sections, args.preset, family)
    train: TextDataset | TextStream = _stream(args) if config.train.streaming else require(load_split(args, "train"), "train")
    validation = load_split(args, "validation")
    test = load_split(args, "test")
    if isinstance(train, TextStream):  # the first pass, now: it finds bad rows and the labels before anything else
        tcfg = config.train
        train.scan(tcfg.seed, tcfg.val_fraction if validation is None else None, tcfg.tokenizer_sample,
                   not args.no_progress)
    if test is not None:  # before training, not after its last epoch
        check_labels_known(test, train.label_names())
        if isinstance(train, TextDataset) and distributed.is_main():
            warn_overlap(train.texts, test, "test")
    with tracker:
        return _train_and_test(args, config, train, validation, test, run_dir, tracker)


def _train_and_test(args: argparse.Namespace, config: Any, train: Any, validation: Any, test: Any, run_dir: Path,
                    tracker: Tracker) -> int:
    with distributed.process_group(args.device) as dev:  # a no-op unless torchrun started this process
        device = str(dev) if distributed.launched() else args.device
        result = fit(
            config, train, run_dir, validation=validation, device=device,
            resume=args.resume, overwrite=args.overwrite, progress=not args.no_progress,
            callbacks=[tracker] if tracker else [],  # the Trainer calls them on rank 0 only
        )
        main = distributed.is_main()
        report = clf = None
        if test is not None and not result.already_complete:
            # Every rank computes its share of the test set's logits and gets them all: the metrics
            # of one process (rank 0 writes and prints them).
            clf = Classifier.load(result.best_dir, device=device, bf16=config.train.bf16, fp16=config.train.fp16)
            report = evaluate(clf, test, progress=main and not args.no_progress, shared=True)
    if not main:
        return 0  # rank 0 reports
    if result.already_complete:
        print(f"the run in {rel(run_dir)} is complete: {len(result.history)} epoch(s), best validation accuracy "
              f"{result.best_val_accuracy:.4f} (epoch {result.best_epoch}); nothing to do "
              "(a larger --epochs continues it)")
        return 0
    print(f"trained {len(result.history)} epoch(s) at {result.train_samples_per_sec:,.0f} samples/s; "
          f"best validation {best_validation(result, train)}")
    print(f"model: {rel(result.best_dir)}   (last: {rel(result.last_dir)}, log: {rel(run_dir / 'metrics.jsonl')})")
    if test is not None:
        assert clf is not None and report is not None
        print_test_report(clf, test, run_dir, result, tracker, progress=not args.no_progress, report=report)
    return 0
