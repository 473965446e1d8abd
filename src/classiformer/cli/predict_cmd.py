"""classiformer predict: label texts given as arguments, on standard input, or in a file."""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from ..data import iter_texts
from ..predict import Classifier, chunks, predict_file, scored_chunks
from .common import add_inference_options, add_runtime_options, apply_runtime, input_columns, load_classifier


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict",
        help="predict labels and class probabilities",
        description="Predict with a trained model. Texts come from the arguments, from --input (CSV, TSV, JSONL[.gz] "
        "or TXT with one text per line; streamed in constant memory) or, when neither is given, from standard "
        "input (one text per line). Output is one JSON object per text, {\"line\", \"label\", \"probabilities\"} "
        "(a multi-label model: \"labels\", the list of labels at or above their thresholds; with --top-k, "
        "\"top_k\": the K best labels with their scores instead of every probability), "
        "the same rows as a JSONL --output file; line is the text's line in --input or on standard input, or its "
        "1-based position among the arguments.",
        epilog='example: classiformer predict runs/ag_news_lesson "Stocks rally as oil prices fall"',
    )
    add_inference_options(p)
    p.add_argument("texts", nargs="*", help="texts to classify")
    p.add_argument("--input", "-i", help="file of texts to classify")
    p.add_argument("--output", "-o", help="where to write predictions for --input (.csv or .jsonl; default: stdout as JSONL)")
    p.add_argument("--text-column", action="append", dest="text_columns", metavar="COL",
                   help="text column/field of --input (repeat to join several; default: text)")
    p.add_argument("--no-header", action="store_true", help="--input CSV/TSV has no header; columns are 0-based indices")
    p.add_argument("--top-k", type=_positive, default=None, metavar="K",
                   help="give each text's K best labels with their scores, best first (JSON: a \"top_k\" list of "
                   "{\"label\", \"score\"}; CSV: top1_label, top1_score, ... columns) instead of every label's "
                   "probability; the decision (label, or a multi-label model's labels above threshold) stays")
    p.add_argument("--processes", type=_positive, default=1, metavar="N",
                   help="--input: predict in N worker processes, each with the model and a share of --threads "
                   "(output in input order, memory constant); worth it for millions of rows on several cores")
    add_runtime_options(p)
    p.set_defaults(func=run)


def _positive(value: str) -> int:
    if not value.strip().isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {value!r}")
    return int(value)


def _emit(clf: Classifier, rows: list[tuple[int, str]], top_k: int | None, proba: np.ndarray | None = None) -> None:
    """One JSON line per ``(line, text)`` row, the same object a JSONL ``--output`` file holds, so
    that output to a terminal, a pipe or a file joins back to the input the same way."""
    if proba is None:
        proba = clf.predict_proba([t for _, t in rows])
    for (line, _), out in zip(rows, clf.outputs(proba, top_k, digits=6)):
        print(json.dumps({"line": line, **out}, ensure_ascii=False))


def run(args: argparse.Namespace) -> int:
    apply_runtime(args)
    clf = load_classifier(args)
    if args.input:
        cols, header = input_columns(args, clf)
        rows = iter_texts(args.input, cols, header=header)
        if args.output:
            n = predict_file(clf, rows, args.output, progress=not args.no_progress, top_k=args.top_k,
                             processes=args.processes)
            print(f"wrote {n} prediction(s) to {args.output}", file=sys.stderr)
        else:
            for chunk, proba in scored_chunks(clf, chunks(rows, 4096), args.processes):
                _emit(clf, chunk, args.top_k, proba)
        return 0
    if args.texts:
        given = list(enumerate(args.texts, start=1))
    else:  # numbered by stdin line, so that the blank lines skipped show as gaps
        given = [(i, line.rstrip("\r\n")) for i, line in enumerate(sys.stdin, start=1) if line.strip()]
    if not given:
        print("error: no texts given (pass them as arguments, with --input FILE, or on standard input)", file=sys.stderr)
        return 2
    _emit(clf, given, args.top_k)
    return 0
