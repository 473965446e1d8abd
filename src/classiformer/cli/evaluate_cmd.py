"""classiformer evaluate: metrics, confusion matrix and training curves for a trained model."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..evaluate import evaluate, write_evaluation
from ..metrics import format_calibration
from .common import (
    add_data_options,
    add_inference_options,
    add_runtime_options,
    apply_runtime,
    load_classifier,
    load_split,
    rel,
    report_text,
    require,
    stored_columns,
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate",
        help="evaluate a trained model on labelled data",
        description="Accuracy, macro-F1, per-class precision/recall/F1 and the confusion matrix (table and PNG), "
        "plus training curves when the model's run log is found. Results go to metrics.json.",
        epilog="example: classiformer evaluate runs/ag_news_lesson --dataset ag_news",
    )
    add_inference_options(p)
    add_data_options(p, train=False)
    p.add_argument("--output", "-o", help="folder for metrics.json and plots (default: the run folder)")
    add_runtime_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    apply_runtime(args)
    clf = load_classifier(args)
    test = require(load_split(args, "test", stored_columns(clf)), "test")
    report = evaluate(clf, test, progress=not args.no_progress)
    out = Path(args.output) if args.output else (clf.path.parent if clf.path and clf.path.name in ("best", "last") else Path(args.model))
    paths = write_evaluation(report, out)
    print(f"model: {clf.path}   test set: {test.source}")
    print(report_text(report, paths))
    print(f"\n{report['eval_docs_per_sec']:,.0f} docs/s")
    print(format_calibration(report))
    for what, path in paths.items():
        print(f"{what}: {rel(path)}")
    return 0
