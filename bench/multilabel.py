"""Multi-label classification and imbalanced classes (issue 13), side by side in one run.

``reuters`` (the default): Reuters-21578 ApteMod from ../shared/data/reuters (7,769 train / 3,019
test, 90 categories; research use only). Peers: TF-IDF (word 1-2-grams) + one-vs-rest LinearSVC and
LogisticRegression (scikit-learn), fastText with ``-loss ova`` (one-vs-all: one sigmoid per label).
classiformer's from-scratch presets train with one sigmoid per label and binary cross-entropy (the
one-vs-rest hinge loss for ``base``: recipe rule 9; ``--train-config '{"multilabel_loss": "bce"}'``
for BCE); the validation split (10% of train) is made by iterative stratification, and the
decision thresholds are chosen on it (thresholds.choose_thresholds) and compared with a fixed 0.5
on the test set.

``pairs``: a multi-label set of another shape (4 frequent labels, short texts), made from the AG
News split: half of its texts joined with a random partner, labelled with both classes
(:func:`ag_pairs`); the same peers and presets.

``imbalance``: single-label imbalance on the AG News split (the canonical 7,600-row test set;
0-based row index % 5 == 0 is the evaluation split, the rest train), the four training classes
subsampled to 100% / 30% / 10% / 3%; classiformer ``lesson`` with and without
``class_weight="balanced"``, macro-F1 and accuracy of both.

    .venv/bin/python bench/multilabel.py                              # reuters, every model
    .venv/bin/python bench/multilabel.py reuters --models svm,lesson --epochs 20
    .venv/bin/python bench/multilabel.py pairs --models svm,fasttext,base --seeds 42,1,2
    .venv/bin/python bench/multilabel.py imbalance --seeds 42,1
    .venv/bin/python bench/multilabel.py reuters --models svm,finetune --max-length 256   # MiniLM, a GPU

``finetune`` (or ``partial``, ``frozen``) runs the pretrained-encoder preset of that name (MiniLM unless
``--model-config '{"source": ...}'``) on the same label lists: a sigmoid head, the thresholds chosen
the same way; it trains and predicts on the GPU when there is one. ``--train-rows N`` keeps a seeded
N-document part of the training set (a quick check that a model runs before the full one).

The table is printed; JSON goes to bench/results/multilabel.json (or imbalance.json), with the
machine (bench/hardware.py); ``--plots DIR`` writes the evaluation figures of each classiformer run.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import logging
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from classiformer import Classifier, evaluate, fit, resolve_config
from classiformer.data import Columns, TextDataset, read_dataset
from classiformer.data.datasets import stratified_split
from classiformer.evaluate_multilabel import multilabel_evaluation, write_multilabel_plots
from classiformer.inference import sigmoid
from classiformer.runtime import set_threads
from classiformer.thresholds import tune_thresholds

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hardware import header as machine_header  # noqa: E402
from hardware import machine  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"  # from a worktree: --data-dir
if not DATA.exists():
    DATA = Path("/work/shared/data")
RESULTS = Path(__file__).resolve().parent / "results"
AG_LABELS = {"1": "World", "2": "Sports", "3": "Business", "4": "Sci/Tech"}
# Share of each AG News class kept in the imbalanced training set (evaluation stays balanced).
KEEP = {"World": 1.0, "Sports": 0.3, "Business": 0.1, "Sci/Tech": 0.03}
MIN_F1_SWEEP = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5)
MEASURES = ("micro_f1", "macro_f1", "subset_accuracy", "hamming_loss")

log = logging.getLogger("bench.multilabel")


# -- Reuters -----------------------------------------------------------------------------------

def read_reuters(path: Path) -> tuple[list[str], list[list[str]]]:
    texts, label_sets = [], []
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            row = json.loads(line)
            if not isinstance(row.get("text"), str) or not isinstance(row.get("labels"), list):
                raise SystemExit(f"{path}:{line_no}: expected {{'text': str, 'labels': [str, ...]}}")
            texts.append(row["text"])
            label_sets.append(row["labels"])
    return texts, label_sets


def indicator(label_sets: list[list[str]], labels: list[str]) -> np.ndarray:
    index = {lb: j for j, lb in enumerate(labels)}
    y = np.zeros((len(label_sets), len(labels)), dtype=np.int64)
    for i, s in enumerate(label_sets):
        for lb in s:
            y[i, index[lb]] = 1
    return y


def scores_of(y: np.ndarray, pred: np.ndarray, labels: list[str]) -> dict[str, float]:
    """The headline measures of 0/1 decisions ``pred`` (multilabel_report of 0/1 scores at 0.5)."""
    report = multilabel_evaluation(y, pred.astype(np.float64), labels, 0.5)
    return {k: report[k] for k in MEASURES}


def run_linear(kind: str, train: tuple[list[str], np.ndarray], test: tuple[list[str], np.ndarray],
               labels: list[str]) -> dict[str, Any]:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.svm import LinearSVC

    estimator = LinearSVC() if kind == "svm" else LogisticRegression(max_iter=1000)
    # scikit-learn's defaults: the peers as a user would first run them (the reference figures).
    model = make_pipeline(TfidfVectorizer(ngram_range=(1, 2)), OneVsRestClassifier(estimator, n_jobs=1))
    t0 = time.perf_counter()
    model.fit(train[0], train[1])
    train_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    pred = model.predict(test[0])
    pred_s = time.perf_counter() - t0
    return {**scores_of(test[1], np.asarray(pred), labels), "train_seconds": train_s,
            "predict_docs_per_sec": len(test[0]) / pred_s}


def run_fasttext(train: tuple[list[str], np.ndarray], test: tuple[list[str], np.ndarray], labels: list[str],
                 seed: int, epochs: int) -> dict[str, Any]:
    import fasttext

    def clean(t: str) -> str:
        return " ".join(t.lower().split())

    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False, encoding="utf-8") as f:
        for text, row in zip(train[0], train[1]):
            tags = " ".join(f"__label__{labels[j]}" for j in np.flatnonzero(row))
            f.write(f"{tags} {clean(text)}\n")
        path = f.name
    try:
        t0 = time.perf_counter()
        model = fasttext.train_supervised(path, loss="ova", wordNgrams=2, epoch=epochs, lr=0.5,
                                          thread=torch.get_num_threads(), seed=seed, verbose=0)
        train_s = time.perf_counter() - t0
    finally:
        os.unlink(path)
    t0 = time.perf_counter()
    got, _ = model.predict([clean(t) for t in test[0]], k=-1, threshold=0.5)
    pred_s = time.perf_counter() - t0
    pred = indicator([[lb.removeprefix("__label__") for lb in row] for row in got], labels)
    return {**scores_of(test[1], pred, labels), "train_seconds": train_s,
            "predict_docs_per_sec": len(test[0]) / pred_s, "epochs": epochs}


def run_ours_multilabel(
    spec: str, train: tuple[list[str], np.ndarray], test: tuple[list[str], np.ndarray], labels: list[str],
    run_dir: Path, overrides: dict[str, Any], pos_weight: str, seed: int, plots: Path | None,
    model_config: dict[str, Any] | None = None, max_length: int | None = None,
) -> dict[str, Any]:
    """A from-scratch preset with one sigmoid per label, trained by ``fit`` on label lists: an
    iterative-stratified validation split, BCE (with ``pos_weight``), per-label temperatures and
    thresholds tuned on the validation split. ``spec`` is a preset (with the adaptive recipe) or
    ``PRESET:fixed`` (the preset's settings as written)."""
    preset, _, mode = spec.partition(":")
    config = resolve_config(preset, model=model_config or {}, tokenizer={"max_length": max_length} if max_length else None,
                            train={**overrides, "seed": seed, "pos_weight": pos_weight, "recipe": mode or "auto"})
    texts, y = train
    data = TextDataset(texts, None, source="reuters-train", label_sets=[[labels[j] for j in np.flatnonzero(r)] for r in y])
    t0 = time.perf_counter()
    result = fit(config, data, run_dir, overwrite=True, progress=False)
    train_s = time.perf_counter() - t0
    clf = Classifier.load(result.best_dir)  # where it trained: a pretrained encoder on the GPU if there is one
    if clf.labels != labels:
        raise SystemExit(f"label order differs: {clf.labels[:5]}... vs {labels[:5]}...")
    t0 = time.perf_counter()
    logits = clf.logits(test[0])  # tokenization included
    pred_s = time.perf_counter() - t0
    assert clf.meta.temperatures is not None
    test_scores = sigmoid(logits, np.asarray(clf.meta.temperatures))  # what clf.predict_proba returns
    report = multilabel_evaluation(test[1], test_scores, labels, np.asarray(clf.thresholds.per_label))
    if plots is not None:
        write_multilabel_plots(report, test[1], test_scores, plots / f"{preset}-{pos_weight}-{seed}")
    stored = json.loads((run_dir / "config.json").read_text())
    rules = threshold_rules(clf, data, test, labels, config.train.val_fraction, seed)
    return {
        "threshold_rules": rules,
        **{k: report[k] for k in MEASURES},
        "at_0.5": {k: report["at_0.5"][k] for k in MEASURES},
        "label_ranking_average_precision": report["label_ranking_average_precision"],
        "labels_tuned": int(sum(clf.thresholds.tuned)), "global_threshold": clf.thresholds.global_threshold,
        "train_seconds": train_s, "train_samples_per_sec": result.train_samples_per_sec,
        "predict_docs_per_sec": len(test[0]) / pred_s, "epochs": len(result.history), "best_epoch": result.best_epoch,
        "pos_weight": pos_weight, "config": stored,
    }


def threshold_rules(clf: Classifier, data: TextDataset, test: tuple[list[str], np.ndarray], labels: list[str],
                    val_fraction: float, seed: int) -> dict[str, dict[str, float]]:
    """The threshold rule, post hoc: the validation split fit held out (the same seeded split),
    thresholds tuned on its scores with each minimum validation F1, the test set decided by them."""
    _, val = stratified_split(data, val_fraction, seed)
    val_y = indicator(val.label_sets or [], labels)
    val_scores, test_scores = clf.predict_proba(val.texts), clf.predict_proba(test[0])
    rules = {}
    for min_f1 in MIN_F1_SWEEP:
        th = tune_thresholds(val_y, val_scores, min_f1=min_f1)
        r = multilabel_evaluation(test[1], test_scores, labels, np.asarray(th.per_label))
        rules[str(min_f1)] = {"micro_f1": r["micro_f1"], "macro_f1": r["macro_f1"], "tuned": int(sum(th.tuned))}
    print("   min validation F1 for a label's own threshold: " + ", ".join(
        f"{k}: micro {v['micro_f1']:.4f} macro {v['macro_f1']:.4f} ({v['tuned']} tuned)" for k, v in rules.items()),
        flush=True)
    return rules


def thresholds_of(args: argparse.Namespace) -> list[dict[str, Any]]:
    """``thresholds --checkpoint DIR``: the threshold sweep on a Reuters model already trained."""
    tr_texts, tr_sets = read_reuters(args.data_dir / "reuters" / "train.jsonl.gz")
    te_texts, te_sets = read_reuters(args.data_dir / "reuters" / "test.jsonl.gz")
    if args.train_rows and args.train_rows < len(tr_texts):
        keep = sorted(random.Random(0).sample(range(len(tr_texts)), args.train_rows))
        tr_texts, tr_sets = [tr_texts[i] for i in keep], [tr_sets[i] for i in keep]
        seen = {lb for s in tr_sets for lb in s}  # a part can miss rare labels: test on the rest
        te_sets = [[lb for lb in s if lb in seen] for s in te_sets]
    clf = Classifier.load(args.checkpoint, device="cpu")
    data = TextDataset(tr_texts, None, source="reuters-train", label_sets=tr_sets)
    test = (te_texts, indicator(te_sets, clf.labels))
    rules = threshold_rules(clf, data, test, clf.labels, clf.meta.train.get("val_fraction", 0.1),
                            int(clf.meta.train.get("seed", 42)))
    return [{"set": "reuters", "checkpoint": str(args.checkpoint), "threshold_rules": rules}]


def reuters(args: argparse.Namespace) -> list[dict[str, Any]]:
    tr_texts, tr_sets = read_reuters(args.data_dir / "reuters" / "train.jsonl.gz")
    te_texts, te_sets = read_reuters(args.data_dir / "reuters" / "test.jsonl.gz")
    if args.train_rows and args.train_rows < len(tr_texts):
        keep = sorted(random.Random(0).sample(range(len(tr_texts)), args.train_rows))
        tr_texts, tr_sets = [tr_texts[i] for i in keep], [tr_sets[i] for i in keep]
        seen = {lb for s in tr_sets for lb in s}  # a part can miss rare labels: test on the rest
        te_sets = [[lb for lb in s if lb in seen] for s in te_sets]
    print(f"Reuters-21578 ApteMod: {len(tr_texts)} train / {len(te_texts)} test", flush=True)
    return compare("reuters", args, tr_texts, tr_sets, te_texts, te_sets)


def ag_pairs(data_dir: Path, seed: int = 0) -> tuple[list[str], list[list[str]], list[str], list[list[str]]]:
    """A multi-label set of another shape than Reuters (4 frequent labels, short texts): the AG
    News split (0-based row index % 5 == 0 is the evaluation part), each text, with probability
    1/2, followed by another text of the same part drawn at random; its labels are the classes of
    the texts it holds (1 or 2 labels, 1.4 per text)."""
    with open(data_dir / "ag_news" / "test.csv", encoding="utf-8", newline="") as f:
        rows = [(f"{r[1]}. {r[2]}", AG_LABELS[r[0]]) for r in csv.reader(f)]

    def build(part: list[int], rng: random.Random) -> tuple[list[str], list[list[str]]]:
        texts, sets = [], []
        for i in part:
            text, labels = rows[i][0], {rows[i][1]}
            if rng.random() < 0.5:
                j = rng.choice(part)
                text, labels = f"{text} {rows[j][0]}", labels | {rows[j][1]}
            texts.append(text)
            sets.append(sorted(labels))
        return texts, sets

    train = build([i for i in range(len(rows)) if i % 5], random.Random(seed + 1))
    test = build([i for i in range(len(rows)) if i % 5 == 0], random.Random(seed + 2))
    return (*train, *test)


def pairs(args: argparse.Namespace) -> list[dict[str, Any]]:
    tr_texts, tr_sets, te_texts, te_sets = ag_pairs(args.data_dir)
    print(f"AG News pairs: {len(tr_texts)} train / {len(te_texts)} test, "
          f"{sum(map(len, tr_sets)) / len(tr_sets):.2f} labels per text", flush=True)
    return compare("ag_pairs", args, tr_texts, tr_sets, te_texts, te_sets)


def compare(set_name: str, args: argparse.Namespace, tr_texts: list[str], tr_sets: list[list[str]], te_texts: list[str],
            te_sets: list[list[str]]) -> list[dict[str, Any]]:
    """Every model of ``--models`` on one multi-label train/test pair, in turn, in this process."""
    labels = sorted({lb for s in tr_sets for lb in s})
    unseen = sorted({lb for s in te_sets for lb in s} - set(labels))
    if unseen:
        raise SystemExit(f"test labels never seen in training: {unseen}")
    train, test = (tr_texts, indicator(tr_sets, labels)), (te_texts, indicator(te_sets, labels))
    print(f"{len(labels)} labels", flush=True)
    overrides = {k: v for k, v in (("epochs", args.epochs), ("lr", args.lr), ("batch_size", args.batch_size)) if v}
    overrides.update(args.train_config)
    results = []
    for name in args.models.split(","):
        for seed in args.seeds:
            print(f"... {name} (seed {seed})", flush=True)
            if name in ("svm", "lr"):
                if seed != args.seeds[0]:
                    continue  # deterministic
                r = run_linear(name, train, test, labels)
            elif name == "fasttext":
                r = run_fasttext(train, test, labels, seed, args.fasttext_epochs)
            else:
                with tempfile.TemporaryDirectory() as tmp:
                    r = run_ours_multilabel(name, train, test, labels, Path(tmp), overrides, args.pos_weight, seed,
                                            args.plots, args.model_config, args.max_length)
            results.append({"set": set_name, "model": name, "seed": seed, **r})
            print("   " + row_reuters(results[-1]), flush=True)
    return results


def row_reuters(r: dict[str, Any]) -> str:
    half = r.get("at_0.5")
    # A temperature keeps the sign of a logit, so 0.5 decides the same before and after calibration.
    tuned = (f"\n      at 0.5: micro-F1 {half['micro_f1']:.4f} macro-F1 {half['macro_f1']:.4f} "
             f"subset {half['subset_accuracy']:.4f}") if half else ""
    return (f"{r['model']:<9} seed {r['seed']:<3} micro-F1 {r['micro_f1']:.4f}  macro-F1 {r['macro_f1']:.4f}  "
            f"subset acc {r['subset_accuracy']:.4f}  Hamming {r['hamming_loss']:.5f}  train {r['train_seconds']:7.1f} s  "
            f"predict {r['predict_docs_per_sec']:8.0f} docs/s{tuned}")


# -- AG News imbalance ---------------------------------------------------------------------------

def imbalance(args: argparse.Namespace) -> list[dict[str, Any]]:
    ds = read_dataset(args.data_dir / "ag_news" / "test.csv", Columns(label=0, text=[1, 2], header=False, label_map=AG_LABELS))
    assert ds.labels is not None
    test = ds.subset([i for i in range(len(ds)) if i % 5 == 0])
    rest = [i for i in range(len(ds)) if i % 5 != 0]
    rng = np.random.default_rng(0)  # the same subsample for every seed and both runs
    keep = []
    for label, share in KEEP.items():
        rows = [i for i in rest if ds.labels[i] == label]
        keep += sorted(rng.choice(rows, size=max(1, round(share * len(rows))), replace=False).tolist())
    train = ds.subset(sorted(keep))
    counts = {lb: sum(1 for x in train.labels or [] if x == lb) for lb in KEEP}
    print(f"AG News split, imbalanced train: {counts} ({len(train)} rows); balanced test: {len(test)} rows", flush=True)
    overrides = {k: v for k, v in (("epochs", args.epochs), ("lr", args.lr), ("batch_size", args.batch_size)) if v}
    overrides.update(args.train_config)
    results = []
    for seed in args.seeds:
        for weight in ("none", "balanced"):
            config = resolve_config(args.preset, train={**overrides, "seed": seed, "class_weight": weight})
            with tempfile.TemporaryDirectory() as tmp:
                t0 = time.perf_counter()
                result = fit(config, train, Path(tmp), overwrite=True, progress=False)
                train_s = time.perf_counter() - t0
                report = evaluate(Classifier.load(result.best_dir, device="cpu"), test, progress=False)
            per_class = {lb: round(report["per_class"][lb]["f1"], 4) for lb in KEEP}
            results.append({"set": "ag_news_imbalanced", "model": args.preset, "class_weight": weight, "seed": seed,
                            "accuracy": report["accuracy"], "macro_f1": report["macro_f1"], "per_class_f1": per_class,
                            "train_counts": counts, "train_seconds": train_s, "epochs": len(result.history),
                            "best_epoch": result.best_epoch, "config": config.to_dict()})
            r = results[-1]
            print(f"   {args.preset} class_weight={weight:<8} seed {seed:<3} accuracy {r['accuracy']:.4f}  "
                  f"macro-F1 {r['macro_f1']:.4f}  train {train_s:6.1f} s  per-class F1 {per_class}", flush=True)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("task", nargs="?", default="reuters", choices=("reuters", "pairs", "imbalance", "thresholds"))
    parser.add_argument("--checkpoint", type=Path, help="thresholds: a Reuters model's checkpoint folder")
    parser.add_argument("--models", default="svm,lr,fasttext,lesson,base", help="reuters: peers and presets to run")
    parser.add_argument("--preset", default="lesson", help="imbalance: the preset to train")
    parser.add_argument("--data-dir", type=Path, default=DATA)
    parser.add_argument("--epochs", type=int, default=None, help="override the presets' epoch count")
    parser.add_argument("--lr", type=float, default=None, help="override the presets' learning rate")
    parser.add_argument("--batch-size", type=int, default=None, help="override the presets' batch size")
    parser.add_argument("--pos-weight", default="none", choices=("none", "auto"), help="reuters: BCE positive weights")
    parser.add_argument("--fasttext-epochs", type=int, default=25)
    parser.add_argument("--seeds", type=lambda s: [int(x) for x in s.split(",")], default=[42])
    parser.add_argument("--plots", type=Path, default=None, help="reuters: write each classiformer run's figures here")
    parser.add_argument("--threads", type=int, default=0, help="torch threads; 0: classiformer's default from the load")
    parser.add_argument("--train-config", type=json.loads, default={}, metavar="JSON",
                        help="reuters: train settings for every classiformer run (the recipe leaves them alone)")
    parser.add_argument("--model-config", type=json.loads, default={}, metavar="JSON",
                        help="reuters: model settings for every classiformer run (the recipe leaves them alone)")
    parser.add_argument("--max-length", type=int, default=None, help="reuters: tokens per text for every classiformer run")
    parser.add_argument("--train-rows", type=int, default=None,
                        help="reuters: a seeded part of the training set (test labels it lacks are dropped)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("classiformer.recipe").setLevel(logging.INFO)
    set_threads(args.threads or None)  # one thread on a busy machine: many times faster than two
    info = machine()
    print(machine_header(info), flush=True)
    results = {"reuters": reuters, "pairs": pairs, "imbalance": imbalance, "thresholds": thresholds_of}[args.task](args)
    out = args.out or RESULTS / {"reuters": "multilabel.json", "pairs": "multilabel_pairs.json", "imbalance": "imbalance.json",
                                 "thresholds": "thresholds.json"}[args.task]
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"machine": info, "command": " ".join(sys.argv), "load_average_end": os.getloadavg()[0]}
    out.write_text(json.dumps({"meta": meta, "results": results}, indent=2))
    print(f"load average at the end {meta['load_average_end']:.1f}; results in {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
