"""The recurrent baseline against the lesson's transformer: accuracy and training speed.

The lesson says transformers parallelize better than RNNs. This trains the ``lesson`` transformer
preset and the ``rnn-attention`` preset (bidirectional GRU + additive attention pooling) with the
same tokenizer (words, 20k vocabulary, max length 256), batch size, epochs and learning rate on
each benchmark set, and reports test accuracy, training samples/s, prediction docs/s and
calibration (NLL/ECE before and after temperature scaling) side by side.

    PYTHONPATH=src python bench/rnn_vs_transformer.py                 # all three sets, bounded
    PYTHONPATH=src python bench/rnn_vs_transformer.py --sets ag_news --epochs 2

Bounded for a shared 2-core CPU: AG News uses its canonical 7,600-row test set split 4:1 (rows
whose 0-based index % 5 == 0 are evaluation); IMDB and SST-2 use seeded subsets of their train
(and IMDB's test) files, sizes below. Trained runs are kept in bench/results/runs/ for
bench/explain.py.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from hardware import header as machine_header
from hardware import machine

from classiformer import Classifier, evaluate, fit, resolve_config
from classiformer.data import Columns, TextDataset, read_dataset

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parents[2] / "shared" / "data"  # the checkout sits next to shared/
RESULTS = ROOT / "bench" / "results"
AG_LABELS = {"1": "World", "2": "Sports", "3": "Business", "4": "Sci/Tech"}
# (train, test) sizes; None = the whole file.
SIZES: dict[str, tuple[int | None, int | None]] = {"ag_news": (None, None), "imdb": (4000, 1000), "sst2": (10000, None)}
# Token limit per set where it differs from the presets' 256: IMDB reviews (about 230 words on
# average) are cut to their first 128 words, which halves the GRU's sequential work.
MAX_LENGTH = {"imdb": 128}
# Model name -> preset (the preset names its family). "transformer-base" is not in the default
# comparison; bench/explain.py uses it for a two-layer model, where rollout differs from attention.
FAMILIES = {"transformer": "lesson", "rnn-attention": "rnn-attention", "transformer-base": "base"}
DEFAULT_MODELS = "transformer,rnn-attention"


def _sample(ds: TextDataset, n: int | None, seed: int) -> TextDataset:
    if n is None or n >= len(ds):
        return ds
    idx = sorted(random.Random(seed).sample(range(len(ds)), n))
    return ds.subset(idx)


def load_set(name: str, data_dir: Path = DATA, seed: int = 0) -> tuple[TextDataset, TextDataset]:
    if name == "ag_news":
        ds = read_dataset(data_dir / "ag_news" / "test.csv", Columns(label=0, text=[1, 2], header=False, label_map=AG_LABELS))
        test = ds.subset([i for i in range(len(ds)) if i % 5 == 0])
        train = ds.subset([i for i in range(len(ds)) if i % 5 != 0])
    else:
        train = read_dataset(data_dir / name / "train.jsonl.gz")
        test = read_dataset(data_dir / name / "test.jsonl.gz")
    n_train, n_test = SIZES[name]
    return _sample(train, n_train, seed), _sample(test, n_test, seed + 1)


def run_dir(dataset: str, family: str) -> Path:
    return RESULTS / "runs" / f"{dataset}_{family}"


def train_one(
    dataset: str, family: str, train: TextDataset, test: TextDataset, epochs: int, seed: int, reuse: bool = False
) -> dict[str, Any]:
    """Train (or with ``reuse``, take the kept run of) one family on one set and test it."""
    tokenizer = {"max_length": MAX_LENGTH[dataset]} if dataset in MAX_LENGTH else None
    config = resolve_config(
        FAMILIES[family], tokenizer=tokenizer, train=dict(epochs=epochs, batch_size=32, patience=0, seed=seed)
    )
    folder = run_dir(dataset, family)
    wall: float | None = None
    if not (reuse and (folder / "best").exists()):
        t0 = time.perf_counter()
        fit(config, train, folder, overwrite=True, progress=False)
        wall = time.perf_counter() - t0
    history = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines() if line.strip()]
    best = max(history, key=lambda h: h["val_accuracy"])
    clf = Classifier.load(folder / "best")
    report = evaluate(clf, test, progress=False)
    n_params = sum(p.numel() for p in clf.model.parameters())
    return {
        "dataset": dataset, "family": family, "preset": FAMILIES[family], "params": n_params,
        "n_train": len(train), "n_test": len(test), "epochs": len(history), "best_epoch": best["epoch"],
        "accuracy": report["accuracy"], "macro_f1": report["macro_f1"],
        "train_samples_per_sec": history[-1]["train_samples_per_sec"], "predict_docs_per_sec": report["eval_docs_per_sec"],
        "temperature": report["temperature"], "nll_uncalibrated": report["nll_uncalibrated"], "nll": report["nll"],
        "ece_uncalibrated": report["ece_uncalibrated"], "ece": report["ece"], "wall_seconds": wall,
    }


def speed_sweep(threads: int, lengths: tuple[int, ...] = (32, 64, 128, 256), batch: int = 32, reps: int = 3) -> list[dict[str, Any]]:
    """Training-step throughput (forward + backward + AdamW step) of both models on identical
    random batches, interleaved rep by rep so that load from other jobs hits both alike."""
    from classiformer.models import build_model
    from classiformer.training import param_groups

    torch.set_num_threads(threads)
    models = {}
    for family in DEFAULT_MODELS.split(","):
        preset = FAMILIES[family]
        cfg = resolve_config(preset, model={"num_labels": 2})
        torch.manual_seed(0)
        m = build_model(cfg.family, cfg.model).train()
        models[family] = (m, torch.optim.AdamW(param_groups(m, 0.01, 1e-3), lr=1e-3))
    rows = []
    for T in lengths:
        ids = torch.randint(2, 20_000, (batch, T))
        mask = torch.ones_like(ids)
        labels = torch.randint(0, 2, (batch,))
        seconds = {f: 0.0 for f in models}
        for rep in range(reps + 1):  # the first rep warms up and is not counted
            for family, (m, opt) in models.items():
                t0 = time.perf_counter()
                m(ids, mask, labels=labels).loss.backward()
                opt.step()
                opt.zero_grad(set_to_none=True)
                if rep:
                    seconds[family] += time.perf_counter() - t0
        row = {"length": T, "batch": batch, "threads": threads,
               **{f"{f}_samples_per_sec": batch * reps / seconds[f] for f in models}}
        row["transformer_speedup"] = row["transformer_samples_per_sec"] / row["rnn-attention_samples_per_sec"]
        rows.append(row)
        print(f"T={T:4d}  transformer {row['transformer_samples_per_sec']:8.0f}  rnn-attention "
              f"{row['rnn-attention_samples_per_sec']:8.0f} samples/s  (transformer x{row['transformer_speedup']:.1f})", flush=True)
    return rows


def paired_speed(dataset: str, train: TextDataset, threads: int, n_batches: int = 40, seed: int = 0) -> dict[str, Any]:
    """Training-step throughput of both models on the same real batches of ``train`` (the same
    length-bucketed batches the trainer uses), interleaved batch by batch so that load from other
    jobs on a shared machine hits both alike. Both presets tokenize identically (words, 20k)."""
    from classiformer.data.batching import bucketed_batches, collate
    from classiformer.models import build_model
    from classiformer.tokenizers import train_tokenizer
    from classiformer.training import param_groups

    torch.set_num_threads(threads)
    labels = train.label_names()
    y = np.array([labels.index(lbl) for lbl in train.labels or []])
    tokenizer_cfg = {"max_length": MAX_LENGTH[dataset]} if dataset in MAX_LENGTH else None
    models = {}
    for family in DEFAULT_MODELS.split(","):
        cfg = resolve_config(FAMILIES[family], tokenizer=tokenizer_cfg)
        tok = train_tokenizer(cfg.tokenizer, train.texts)
        cfg.model.vocab_size, cfg.model.num_labels = tok.vocab_size, len(labels)
        torch.manual_seed(seed)
        m = build_model(cfg.family, cfg.model).train()
        models[family] = (m, torch.optim.AdamW(param_groups(m, 0.01, 1e-3), lr=1e-3))
    ids = tok.encode(train.texts)
    lengths = np.array([len(x) for x in ids])
    batches = bucketed_batches(lengths, 32, seed, 0)[: n_batches + 1]
    seconds = {f: 0.0 for f in models}
    samples = 0
    for b, idx in enumerate(batches):
        batch = collate([ids[i] for i in idx], tok.pad_id, y[idx])
        for family, (m, opt) in models.items():
            t0 = time.perf_counter()
            m(**batch).loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            if b:  # the first batch warms up
                seconds[family] += time.perf_counter() - t0
        samples += len(idx) if b else 0
    row = {"dataset": dataset, "batches": len(batches) - 1, "mean_tokens": float(lengths[np.concatenate(batches[1:])].mean()),
           "threads": threads, **{f"{f}_samples_per_sec": samples / seconds[f] for f in models}}
    row["transformer_speedup"] = row["transformer_samples_per_sec"] / row["rnn-attention_samples_per_sec"]
    print(f"{dataset:8s} (mean {row['mean_tokens']:.0f} tokens)  transformer {row['transformer_samples_per_sec']:8.0f}  "
          f"rnn-attention {row['rnn-attention_samples_per_sec']:8.0f} samples/s  (transformer x{row['transformer_speedup']:.1f})",
          flush=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sets", default="ag_news,imdb,sst2")
    ap.add_argument("--families", default=DEFAULT_MODELS, help=f"from {', '.join(FAMILIES)}")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reuse", action="store_true", help="test the runs kept in bench/results/runs instead of retraining")
    ap.add_argument("--speed", action="store_true",
                    help="only training-step throughput: both models on the same real batches of each set, "
                    "interleaved, then a sweep over sequence lengths on random batches")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)
    print(machine_header(), flush=True)
    if args.speed:
        paired = [paired_speed(name, load_set(name, seed=args.seed)[0], args.threads) for name in args.sets.split(",")]
        sweep = speed_sweep(args.threads)
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / f"rnn_vs_transformer_speed_t{args.threads}.json").write_text(json.dumps({"machine": machine(), "datasets": paired, "sweep": sweep}, indent=2))
        return
    rows = []
    for name in args.sets.split(","):
        train, test = load_set(name, seed=args.seed)
        for family in args.families.split(","):
            row = train_one(name, family, train, test, args.epochs, args.seed, args.reuse)
            rows.append(row)
            print(f"{name:8s} {family:14s} acc {row['accuracy']:.4f}  train {row['train_samples_per_sec']:8.0f} samples/s  "
                  f"predict {row['predict_docs_per_sec']:8.0f} docs/s  (wall {row['wall_seconds'] or 0:.0f} s)", flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "rnn_vs_transformer.json"
    # Rows of other sets (earlier invocations) are kept, so the sets can be run one at a time.
    done = {(r["dataset"], r["family"]) for r in rows}
    old = json.loads(out.read_text())["rows"] if out.exists() else []
    rows = [r for r in old if (r["dataset"], r["family"]) not in done] + rows
    print()
    header = "| set | family | params | n train/test | accuracy | train samples/s | predict docs/s | NLL before -> after | ECE before -> after |"
    print(header)
    print("|" + "---|" * 9)
    for r in rows:
        print(f"| {r['dataset']} | {r['family']} | {r['params']:,} | {r['n_train']}/{r['n_test']} | {r['accuracy']:.4f} | "
              f"{r['train_samples_per_sec']:,.0f} | {r['predict_docs_per_sec']:,.0f} | "
              f"{r['nll_uncalibrated']:.4f} -> {r['nll']:.4f} | {r['ece_uncalibrated']:.4f} -> {r['ece']:.4f} |")
    meta = {"machine": machine(), "torch": torch.__version__, "epochs": args.epochs, "seed": args.seed, "sizes": SIZES}
    out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
