"""classiformer explain: why a model predicts what it predicts, as heatmaps, HTML and JSON."""

from __future__ import annotations

import argparse
from itertools import islice
from pathlib import Path

from ..data import iter_texts
from ..explain import DEFAULT_METHODS, METHODS
from ..explain_report import write_explanation
from ..predict import Classifier
from .common import add_runtime_options, apply_runtime, input_columns, rel


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "explain",
        help="explain predictions: attention heatmaps and token importance",
        description="For each text: attention heatmaps per layer and head with the tokens on both axes (PNG), "
        "token importance by attention rollout and integrated gradients (for the rnn-attention family, its "
        "attention pooling weights), a self-contained HTML page with the text highlighted, the predicted label "
        "and class probabilities, and JSON with tokens, scores and attention weights.",
        epilog='example: classiformer explain runs/ag_news_lesson "Stocks rally as oil prices fall" -o explained/',
    )
    p.add_argument("model", help="run folder or checkpoint folder")
    p.add_argument("texts", nargs="*", help="texts to explain")
    p.add_argument("--input", "-i", help="file of texts to explain (CSV, TSV, JSONL[.gz] or TXT, one text per line)")
    p.add_argument("--text-column", action="append", dest="text_columns", metavar="COL",
                   help="text column/field of --input (repeat to join several; default: text)")
    p.add_argument("--no-header", action="store_true", help="--input CSV/TSV has no header; columns are 0-based indices")
    p.add_argument("--limit", type=int, default=100, help="explain at most this many texts of --input (default: 100)")
    p.add_argument("--output", "-o", default="explanations", help="folder for the files (default: explanations/)")
    p.add_argument("--methods", default=",".join(DEFAULT_METHODS),
                   help=f"comma-separated importance methods from {', '.join(METHODS)} (default: "
                   f"{','.join(DEFAULT_METHODS)}; ngram only for models with an n-gram branch, such as the base preset)")
    p.add_argument("--words", action="store_true", help="merge subword tokens (WordPiece ##) back into words")
    p.add_argument("--include-special", action="store_true",
                   help="show the tokenizer's special tokens ([CLS], [SEP], ...) in the importance displays and the "
                   "printed most important token (the JSON always has every token, flagged)")
    add_runtime_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    apply_runtime(args)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    clf = Classifier.load(args.model, device=args.device)
    if args.input:
        cols, header = input_columns(args, clf)
        texts = [t for _, t in islice(iter_texts(args.input, cols, header=header), args.limit)]
    else:
        texts = list(args.texts)
    if not texts:
        raise ValueError("no texts given: pass them as arguments or with --input FILE")
    out = Path(args.output)
    width = len(str(len(texts)))
    for i, text in enumerate(texts, 1):
        expl = clf.explain(text, methods=methods, words=args.words)
        stem = "explanation" if len(texts) == 1 else f"explanation_{i:0{width}d}"
        paths = write_explanation(expl, out, stem, include_special=args.include_special)
        top = {m: best[0][0] for m in expl.importance if (best := expl.top_tokens(m, 1, args.include_special))}
        print(f"{expl.label} ({expl.probabilities[expl.label]:.3f})  most important: "
              + ", ".join(f"{m}={t!r}" for m, t in top.items()) + f"  -> {rel(paths['html'])}")
    return 0
