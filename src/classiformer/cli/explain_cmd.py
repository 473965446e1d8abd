"""classiformer explain: why a model predicts what it predicts, as heatmaps, HTML and JSON."""

from __future__ import annotations

import argparse
import re
from itertools import islice
from pathlib import Path

from ..data import iter_texts
from ..explain import DEFAULT_METHODS, METHODS, label_index
from ..explain_report import write_explanation
from ..predict import Classifier
from .common import add_runtime_options, apply_runtime, input_columns, rel


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "explain",
        help="explain predictions: attention heatmaps and token importance",
        description="For each text: attention heatmaps per layer and head with the tokens on both axes (PNG), "
        "token importance by attention rollout and integrated gradients (for the rnn-attention family, its "
        "attention pooling weights), a self-contained HTML page with the text highlighted, the label explained "
        "and class probabilities, and JSON with tokens, scores and attention weights. A multi-label model gets one "
        "explanation per predicted label (files named after the label); --label picks the labels.",
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
    p.add_argument("--label", action="append", dest="labels", metavar="NAME",
                   help="explain the score of this label (any of the model's labels, predicted or not; repeat for "
                   "several), each in its own files named after it (default: the predicted class; for a "
                   "multi-label model, each label it predicts, or its highest-scoring one when none reaches its "
                   "threshold)")
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
    labels = list(dict.fromkeys(args.labels)) if args.labels else None
    for name in labels or ():
        label_index(clf.labels, name)  # an unknown label fails before any file is written
    # Files carry the label's name wherever the labels explained are not simply the prediction.
    by_label = labels is not None or clf.multi_label
    out = Path(args.output)
    width = len(str(len(texts)))
    for i, text in enumerate(texts, 1):
        stem = "explanation" if len(texts) == 1 else f"explanation_{i:0{width}d}"
        names: set[str] = set()
        for j, expl in enumerate(clf.explain_labels(text, labels, methods=methods, words=args.words)):
            if by_label:
                # The attention maps do not depend on the label: written once per text, under its stem.
                paths = write_explanation(expl, out, f"{stem}_{_slug(expl.label, names)}",
                                          include_special=args.include_special, png_stem=stem if j == 0 else "")
            else:
                paths = write_explanation(expl, out, stem, include_special=args.include_special)
            top = {m: best[0][0] for m in expl.importance if (best := expl.top_tokens(m, 1, args.include_special))}
            status = (" predicted" if expl.is_predicted else " not predicted") if by_label else ""
            print(f"{expl.label} ({expl.probabilities[expl.label]:.3f}{status})  most important: "
                  + ", ".join(f"{m}={t!r}" for m, t in top.items()) + f"  -> {rel(paths['html'])}")
    return 0


def _slug(label: str, taken: set[str]) -> str:
    """``label`` as a file-name part (``Sci/Tech`` -> ``Sci_Tech``), distinct from those ``taken``."""
    base = re.sub(r"[^\w.-]+", "_", label).strip("._") or "label"
    slug, k = base, 2
    while slug in taken:
        slug, k = f"{base}_{k}", k + 1
    taken.add(slug)
    return slug
