"""classiformer tune: a hyperparameter search (Optuna) over ordinary training runs."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

from ..config import FAMILY_PRESETS, resolve_config
from ..data import check_labels_known
from ..evaluate import evaluate, write_evaluation
from ..predict import Classifier
from ..tuning import (
    BEST_CONFIG_FILE,
    DEFAULT_SPACES,
    METRICS,
    PRUNERS,
    STUDY_FILE,
    SUMMARY_FILE,
    default_space,
    describe_space,
    load_space,
    tune,
)
from .common import (
    add_data_options,
    add_model_options,
    add_runtime_options,
    add_tracking_options,
    apply_runtime,
    load_split,
    rel,
    report_text,
    require,
    with_sigterm,
)

log = logging.getLogger(__name__)

def _space_help() -> str:
    parts = []
    for family, space in DEFAULT_SPACES.items():
        parts.append(f"{family}: " + "; ".join(describe_space(space)))
    return " | ".join(parts)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "tune",
        help="search hyperparameters with Optuna (each trial an ordinary run)",
        description="Search the settings that maximise a validation metric: an Optuna study (TPE sampler, "
        "median or Hyperband pruning on each epoch's validation metric) whose trials are ordinary runs in "
        "OUTPUT/trials/NNN/. The study is stored (SQLite OUTPUT/study.db by default): run the same command "
        "again to continue it, or start it on several processes or machines with one --storage. At the end: "
        "OUTPUT/best_config.json (for 'classiformer train --config'), summary.json and plots. Ctrl-C stops "
        "the running trial with its checkpoint saved and leaves the study consistent. "
        f"Default search spaces per model family: {_space_help()}.",
        epilog="example: classiformer tune --train train.csv --preset lesson --trials 30 --timeout 1200 "
        "-o tuning/lesson",
    )
    add_data_options(p, train=True)
    add_model_options(p, "model (what the trials start from)")
    s = p.add_argument_group("search")
    s.add_argument("--trials", type=int, default=20,
                   help="finished (completed or pruned) trials the study should hold; a rerun or another worker "
                   "counts those already there (default: 20)")
    s.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                   help="start no trial after this many seconds (the running one finishes)")
    s.add_argument("--space", metavar="FILE.json",
                   help='JSON object overriding the default space entry by entry: "train.lr": {"type": "float", '
                   '"low": 1e-4, "high": 1e-2, "log": true}, "train.batch_size": {"type": "categorical", "choices": '
                   '[32, 64]}, "model.num_layers": {"type": "int", "low": 1, "high": 2}, a plain value fixes a key, '
                   "null drops a default one; unknown keys are errors")
    s.add_argument("--print-space", action="store_true", help="print the search space the trials would use, as JSON, and exit")
    s.add_argument("--metric", choices=METRICS, default=None,
                   help="validation metric to maximise, of the epoch a run keeps (default: accuracy; micro_f1 for "
                   "multi-label data)")
    s.add_argument("--pruner", choices=PRUNERS, default="median",
                   help="median: stop a trial whose epoch is below the median of earlier trials at that epoch; "
                   "hyperband: successive halving over epochs; none (default: median)")
    s.add_argument("--startup-trials", type=int, default=5,
                   help="trials sampled at random before TPE models the results; the median pruner prunes none "
                   "until this many have finished (default: 5)")
    s.add_argument("--seed", type=int, default=None,
                   help="seed of the sampler, for a repeatable search in one process (trials' own seed: --config)")
    s.add_argument("--storage", metavar="URL",
                   help="Optuna storage, any SQLAlchemy URL: postgresql://..., mysql://..., sqlite:///file.db "
                   f"(default: sqlite:///OUTPUT/{STUDY_FILE})")
    s.add_argument("--study", default="classiformer", help="study name in the storage (default: classiformer)")
    s.add_argument("--n-jobs", type=int, default=1,
                   help="trials run at once in this process (threads sharing the CPU cores); for more, start the "
                   "command again in other processes or on other machines with the same --storage")
    s.add_argument("--refit", action="store_true",
                   help="retrain the best settings on training + validation data (for the best trial's number of "
                   "epochs) into OUTPUT/refit/")
    s.add_argument("--no-plots", action="store_true", help="skip the PNG plots of the study")
    o = p.add_argument_group("output")
    o.add_argument("--output", "-o", required=True, help="folder of the study: trials/, study.db, best_config.json, plots")
    add_tracking_options(p)
    add_runtime_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """SIGTERM ends the command as Ctrl-C does (exit 143); while a trial trains it stops at its next
    safe point, the study left consistent."""
    return with_sigterm(_run, args)


def _base(args: argparse.Namespace) -> tuple[str, str | None, dict[str, dict[str, Any]]]:
    """The preset, family and config overrides the flags ask for (as ``train`` reads them)."""
    sections: dict[str, dict[str, Any]] = {"model": {}, "tokenizer": {}, "train": {}}
    preset, family = args.preset, None
    if args.model in FAMILY_PRESETS and not args.mode:
        family = args.model
        preset = preset or FAMILY_PRESETS[family]
    elif args.model or args.mode:
        sections["model"]["source"] = args.model or "minilm"
        preset = preset or args.mode or "finetune"
        if args.mode:
            sections["model"]["mode"] = args.mode
    return preset or "base", family, sections


def _run(args: argparse.Namespace) -> int:
    apply_runtime(args)
    preset, family, sections = _base(args)
    base = resolve_config(preset, args.config, family=family, **sections)
    space = default_space(base)
    if args.space:
        space = load_space(args.space, space, base.family)
    if args.print_space:
        print(json.dumps(space, indent=2))
        return 0
    train = require(load_split(args, "train"), "train")
    validation = load_split(args, "validation")
    test = load_split(args, "test")
    if test is not None:
        check_labels_known(test, train.label_names())
    multi = train.is_multi_label or base.train.multi_label
    out = Path(args.output)
    result = tune(
        train, out, validation=validation, preset=preset, family=family, config_file=args.config, overrides=sections,
        space=space, trials=args.trials, timeout=args.timeout, storage=args.storage, study_name=args.study,
        metric=args.metric or ("micro_f1" if multi else "accuracy"), pruner=args.pruner,
        startup_trials=args.startup_trials, n_jobs=args.n_jobs, refit=args.refit, seed=args.seed, device=args.device,
        progress=not args.no_progress, report_to=args.report_to, tracking_uri=args.tracking_uri,
        plots=not args.no_plots,
    )
    states = ", ".join(f"{n} {s.lower()}" for s, n in sorted(result.states.items()))
    print(f"study {result.study_name!r}: {result.finished} finished trial(s) ({states}); storage {result.storage}")
    if result.best_trial is None:
        print("no trial completed yet: nothing to report (run the command again to continue the study)")
        return 0
    print(f"best: trial {result.best_trial}, validation {args.metric or ('micro_f1' if multi else 'accuracy')} "
          f"{result.best_value:.4f}, in {rel(result.best_run) if result.best_run else '?'}")
    for key, value in result.best_params.items():
        print(f"  {key} = {value:.4g}" if isinstance(value, float) else f"  {key} = {value}")
    print(f"best settings: {rel(out / BEST_CONFIG_FILE)}   (classiformer train --config {rel(out / BEST_CONFIG_FILE)} ...)")
    print(f"all trials: {rel(out / SUMMARY_FILE)}")
    for what, path in result.plots.items():
        print(f"{what}: {rel(path)}")
    model_dir = result.model_dir
    if result.refit is not None:
        print(f"refit on training + validation: {rel(result.refit.best_dir)}")
    if test is not None and model_dir is not None:
        clf = Classifier.load(model_dir, device=args.device)
        report = evaluate(clf, test, progress=not args.no_progress)
        paths = write_evaluation(report, model_dir)
        print()
        print(f"test set: {test.source} (model: {rel(model_dir)})")
        print(report_text(report, paths))
    return 0
