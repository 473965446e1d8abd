"""From-scratch models against classic baselines, side by side in one run.

For each benchmark set (AG News split, IMDB, SST-2 from ../shared/data) it trains and tests:
TF-IDF (word 1-2-grams) + logistic regression, fastText with bigrams, the lesson's own Keras model
(bench/keras_lesson.py, in its own TensorFlow environment: ``bash bench/setup_keras.sh`` once) and
classiformer's ``lesson`` and ``base`` presets; it prints a table and writes JSON (accuracy, training
samples/s, prediction docs/s).

    .venv/bin/python bench/scratch.py                       # everything (about an hour on 2 cores)
    .venv/bin/python bench/scratch.py --sets ag_news --models tfidf,lesson

The AG News train set is not available offline, so its canonical 7,600-row test set is split: rows
whose 0-based index is divisible by 5 are the evaluation split, the rest train. IMDB and SST-2 use their
own train and test files (SST-2's test is the GLUE dev set).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from hardware import header as machine_header
from hardware import machine

from classiformer import Classifier, evaluate, fit, resolve_config
from classiformer.data import Columns, TextDataset, read_dataset

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
AG_LABELS = {"1": "World", "2": "Sports", "3": "Business", "4": "Sci/Tech"}


def load_set(name: str, data_dir: Path) -> tuple[TextDataset, TextDataset]:
    if name == "ag_news":
        ds = read_dataset(data_dir / "ag_news" / "test.csv", Columns(label=0, text=[1, 2], header=False, label_map=AG_LABELS))
        test = ds.subset([i for i in range(len(ds)) if i % 5 == 0])
        train = ds.subset([i for i in range(len(ds)) if i % 5 != 0])
        return train, test
    return read_dataset(data_dir / name / "train.jsonl.gz"), read_dataset(data_dir / name / "test.jsonl.gz")


def run_tfidf(train: TextDataset, test: TextDataset, analyzer: str = "word") -> dict[str, Any]:
    """TF-IDF + logistic regression: word 1-2-grams, or (``analyzer="char"``) character 1-3-grams."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    ngrams = (1, 2) if analyzer == "word" else (1, 3)
    vectorizer = TfidfVectorizer(analyzer=analyzer, ngram_range=ngrams, sublinear_tf=True)
    model = make_pipeline(vectorizer, LogisticRegression(max_iter=2000, C=10.0))
    t0 = time.perf_counter()
    model.fit(train.texts, train.labels)
    train_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    pred = model.predict(test.texts)
    pred_s = time.perf_counter() - t0
    acc = sum(p == y for p, y in zip(pred, test.labels or [])) / len(test)
    return {"accuracy": acc, "train_samples_per_sec": len(train) / train_s, "predict_docs_per_sec": len(test) / pred_s,
            "train_seconds": train_s}


def run_fasttext(train: TextDataset, test: TextDataset, seed: int) -> dict[str, Any]:
    import fasttext

    def clean(t: str) -> str:
        return " ".join(t.lower().split())

    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False, encoding="utf-8") as f:
        for text, label in zip(train.texts, train.labels or []):
            f.write(f"__label__{label.replace(' ', '_')} {clean(text)}\n")
        path = f.name
    try:
        t0 = time.perf_counter()
        model = fasttext.train_supervised(path, wordNgrams=2, epoch=5, lr=0.5, thread=torch.get_num_threads(), seed=seed, verbose=0)
        train_s = time.perf_counter() - t0
    finally:
        os.unlink(path)
    t0 = time.perf_counter()
    labels, _ = model.predict([clean(t) for t in test.texts])
    pred_s = time.perf_counter() - t0
    pred = [ls[0].removeprefix("__label__").replace("_", " ") for ls in labels]
    acc = sum(p == y for p, y in zip(pred, test.labels or [])) / len(test)
    return {"accuracy": acc, "train_samples_per_sec": len(train) / train_s, "predict_docs_per_sec": len(test) / pred_s,
            "train_seconds": train_s}


def run_keras(train: TextDataset, test: TextDataset, epochs: int, seed: int, python: Path) -> dict[str, Any]:
    """The lesson's Keras model on the same split, through its own interpreter (see keras_lesson.py)."""
    if not python.exists():
        raise SystemExit(f"{python} not found: run 'bash bench/setup_keras.sh' first, or leave 'keras' out of --models")
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for part, ds in (("train", train), ("test", test)):
            path = Path(tmp) / f"{part}.jsonl"
            with path.open("w", encoding="utf-8") as f:
                for text, label in zip(ds.texts, ds.labels or []):
                    f.write(json.dumps({"text": text, "label": label}) + "\n")
            paths.append(str(path))
        out = Path(tmp) / "keras.json"
        script = Path(__file__).with_name("keras_lesson.py")
        cmd = [str(python), str(script), *paths, "--epochs", str(epochs), "--seed", str(seed), "--out", str(out)]
        subprocess.run(cmd, check=True)
        result: dict[str, Any] = json.loads(out.read_text())
    result["epochs_accuracy"] = [e["accuracy"] for e in result["epochs"]]
    result["epochs"] = len(result["epochs"])
    return result


def run_ours(preset: str, train: TextDataset, test: TextDataset, run_dir: Path, overrides: dict[str, Any],
             model: dict[str, Any], tokenizer: dict[str, Any]) -> dict[str, Any]:
    config = resolve_config(preset, model=model, tokenizer=tokenizer, train=overrides)
    t0 = time.perf_counter()
    result = fit(config, train, run_dir, overwrite=True, progress=False)
    train_s = time.perf_counter() - t0
    clf = Classifier.load(result.best_dir)
    report = evaluate(clf, test, progress=False)
    return {
        "accuracy": report["accuracy"],
        "macro_f1": report["macro_f1"],
        "train_samples_per_sec": result.train_samples_per_sec,
        "predict_docs_per_sec": report["eval_docs_per_sec"],
        "epochs": len(result.history),
        "best_epoch": result.best_epoch,
        "train_seconds": train_s,
        "config": config.to_dict(),
    }


def write_results(out: Path, results: list[dict[str, Any]]) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"date": time.strftime("%Y-%m-%d"), "machine": machine(), "command": " ".join(sys.argv)}
    out.write_text(json.dumps({"meta": meta, "results": results}, indent=2))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", default="ag_news,sst2,imdb")
    parser.add_argument("--models", default="tfidf,fasttext,keras,lesson,base")
    parser.add_argument("--data-dir", type=Path, default=DATA)
    parser.add_argument("--epochs", type=int, default=None, help="override the presets' epoch count")
    parser.add_argument("--lr", type=float, default=None, help="override the presets' learning rate")
    parser.add_argument("--batch-size", type=int, default=None, help="override the presets' batch size")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--model-config", type=json.loads, default={}, metavar="JSON",
                        help='override the presets\' model settings, e.g. \'{"token_dropout": 0.3}\'')
    parser.add_argument("--tokenizer-config", type=json.loads, default={}, metavar="JSON",
                        help='override the presets\' tokenizer settings, e.g. \'{"vocab_size": 30000}\'')
    parser.add_argument(
        "--keras-epochs",
        type=int,
        default=3,
        help="epochs of the lesson's Keras model (accuracy is reported after each)",
    )
    parser.add_argument(
        "--keras-python",
        type=Path,
        default=Path(__file__).resolve().parents[1] / ".venv-keras" / "bin" / "python",
    )
    parser.add_argument("--out", type=Path, default=Path("bench/results/scratch.json"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(len(os.sched_getaffinity(0)))
    print(machine_header(), flush=True)
    results: list[dict[str, Any]] = []
    header = f"{'set':<8} {'model':<9} {'accuracy':>8} {'train samples/s':>15} {'predict docs/s':>14} {'epochs':>6} {'train s':>8}"
    print(header)
    print("-" * len(header))
    overrides: dict[str, Any] = {"seed": args.seed}
    for key in ("epochs", "lr", "batch_size"):
        if getattr(args, key) is not None:
            overrides[key] = getattr(args, key)
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.sets.split(","):
            train, test = load_set(name, args.data_dir)
            for model in args.models.split(","):
                if model == "tfidf":
                    r = run_tfidf(train, test)
                elif model == "fasttext":
                    r = run_fasttext(train, test, args.seed)
                elif model == "keras":
                    r = run_keras(train, test, args.keras_epochs, args.seed, args.keras_python)
                else:
                    r = run_ours(model, train, test, Path(tmp) / f"{name}_{model}", overrides, args.model_config,
                                 args.tokenizer_config)
                r.update(set=name, model=model, n_train=len(train), n_test=len(test))
                results.append(r)
                write_results(args.out, results)  # after every row: a long run keeps what it measured
                print(f"{name:<8} {model:<9} {r['accuracy']:>8.4f} {r['train_samples_per_sec']:>15,.0f} "
                      f"{r['predict_docs_per_sec']:>14,.0f} {r.get('epochs', ''):>6} {r['train_seconds']:>8.1f}", flush=True)
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
