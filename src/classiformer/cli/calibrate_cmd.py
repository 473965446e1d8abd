"""classiformer calibrate: fit a trained model's temperature on labelled held-out data."""

from __future__ import annotations

import argparse

from ..calibration import calibrate
from ..thresholds import Thresholds
from .common import (
    add_data_options,
    add_inference_options,
    add_runtime_options,
    apply_runtime,
    load_classifier,
    load_split,
    require,
    stored_columns,
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "calibrate",
        help="fit temperature scaling on labelled data and store it in the model",
        description="Temperature scaling (Guo et al., 2017): one scalar that divides the logits, fitted to minimise "
        "the negative log-likelihood of held-out labels, so probabilities mean what they say. It never changes "
        "the predicted label. Training already fits it on the validation split; use this to refit on other "
        "held-out data. The temperature is stored in the checkpoint and used by predict, evaluate and serve. "
        "Evaluating on the same data you calibrated on flatters the result.",
        epilog="example: classiformer calibrate runs/ag_news_lesson --data heldout.csv",
    )
    add_inference_options(p)
    p.add_argument("--data", metavar="PATH", help="labelled held-out data (same formats as --test)")
    add_data_options(p, train=False)
    add_runtime_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    apply_runtime(args)
    if args.data:
        args.test = args.data
    clf = load_classifier(args)
    data = require(load_split(args, "test", stored_columns(clf)), "test")
    r = calibrate(clf, data, progress=not args.no_progress)
    print(f"model: {clf.path}   calibration data: {data.source} ({len(data)} examples)")
    if clf.multi_label:
        t = r["threshold_summary"]
        print(f"per-label temperatures {min(r['temperatures']):.3f} .. {max(r['temperatures']):.3f}; thresholds: "
              f"{Thresholds.from_dict(r['thresholds']).describe()}")
        print(f"NLL {r['nll_uncalibrated']:.4f} -> {r['nll']:.4f}   ECE (mean per label) {r['ece_uncalibrated']:.4f} -> "
              f"{r['ece']:.4f}   micro ECE {r['micro_ece_uncalibrated']:.4f} -> {r['micro_ece']:.4f}")
        print(f"micro-F1 {t['micro_f1']:.4f} (at 0.5: {t['micro_f1_at_0.5']:.4f})   macro-F1 {t['macro_f1']:.4f} "
              f"(at 0.5: {t['macro_f1_at_0.5']:.4f})")
        return 0
    print(f"temperature {r['temperature']:.4f}")
    print(f"NLL {r['nll_uncalibrated']:.4f} -> {r['nll']:.4f}   ECE {r['ece_uncalibrated']:.4f} -> {r['ece']:.4f}")
    return 0
