"""How faithful are the explanations? A deletion test.

For each test text, rank its tokens by each importance method, delete the top-k tokens from the
input (the sequence gets shorter; nothing is masked or replaced) and measure the drop in the
probability of the originally predicted class. A method whose top tokens really drive the
prediction causes a larger drop than deleting k random tokens (the baseline, averaged over 5
draws). Methods: ``rollout`` (transformer), ``attention`` (the RNN's attention pooling weights;
for the transformer, last-layer attention), ``gradient`` (integrated gradients, 16 steps) and
``random``.

Uses the runs that bench/rnn_vs_transformer.py keeps in bench/results/runs/ (and trains any that
are missing). Texts shorter than 8 tokens are skipped so that k = 5 leaves some text.

    PYTHONPATH=src python bench/explain.py                       # 300 texts per set (100 for IMDB)
    PYTHONPATH=src python bench/explain.py --sets sst2 --n 100
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import time
from typing import Any

import numpy as np
import torch
from hardware import header, machine
from rnn_vs_transformer import DEFAULT_MODELS, FAMILIES, RESULTS, load_set, run_dir, train_one

from classiformer import Classifier
from classiformer.data import EncodedDataset
from classiformer.explain import explain
from classiformer.inference import logits_for, softmax

KS = (1, 3, 5)
METHODS = {
    "transformer": ("rollout", "attention", "gradient"),
    "transformer-base": ("rollout", "attention", "gradient"),
    "rnn-attention": ("attention", "gradient"),
}
N_DEFAULT = {"ag_news": 300, "imdb": 100, "sst2": 300}
RANDOM_DRAWS = 5
MIN_TOKENS = 8


def deletion_test(clf: Classifier, texts: list[str], methods: tuple[str, ...], seed: int, steps: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    reduced: list[np.ndarray] = []
    owners: list[tuple[int, str, int]] = []  # (text number, method, k) per reduced sequence
    targets, p0 = [], []
    for i, text in enumerate(texts):
        ids = clf.tokenizer.encode([text])[0]
        e = explain(clf, text, methods, steps=steps)
        target = clf.labels.index(e.label)
        targets.append(target)
        p0.append(e.probabilities[e.label])
        for method in methods:
            order = np.argsort(-np.asarray(e.importance[method]), kind="stable")
            for k in KS:
                reduced.append(np.delete(ids, order[:k]))
                owners.append((i, method, k))
        for _ in range(RANDOM_DRAWS):
            order = rng.permutation(len(ids))
            for k in KS:
                reduced.append(np.delete(ids, order[:k]))
                owners.append((i, "random", k))
    proba = softmax(logits_for(clf.model, EncodedDataset(reduced), clf.tokenizer.pad_id, 256, clf.device), clf.temperature)
    drops: dict[tuple[str, int], list[float]] = {}
    flips: dict[tuple[str, int], list[float]] = {}
    for (i, method, k), p in zip(owners, proba):
        drops.setdefault((method, k), []).append(p0[i] - float(p[targets[i]]))
        flips.setdefault((method, k), []).append(float(p.argmax() != targets[i]))
    out: dict[str, Any] = {}
    for method in (*methods, "random"):
        out[method] = {
            **{f"drop@{k}": float(np.mean(drops[(method, k)])) for k in KS},
            **{f"flip@{k}": float(np.mean(flips[(method, k)])) for k in KS},
        }
        out[method]["mean_drop"] = float(np.mean([out[method][f"drop@{k}"] for k in KS]))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sets", default="ag_news,imdb,sst2")
    ap.add_argument("--families", default=DEFAULT_MODELS, help=f"from {', '.join(FAMILIES)}")
    ap.add_argument("--n", type=int, default=0, help="texts per set (default: 300, 100 for IMDB)")
    ap.add_argument("--steps", type=int, default=16, help="integrated-gradients steps")
    ap.add_argument("--epochs", type=int, default=3, help="epochs for runs that must be trained first")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)
    print(header(), flush=True)
    results = []
    for name in args.sets.split(","):
        train, test = load_set(name, seed=args.seed)
        for family in args.families.split(","):
            folder = run_dir(name, family)
            if not (folder / "best").exists():
                train_one(name, family, train, test, args.epochs, args.seed)
            clf = Classifier.load(folder)
            pool = [t for t in test.texts if len(clf.tokenizer.encode([t])[0]) >= MIN_TOKENS]
            texts = random.Random(args.seed).sample(pool, min(len(pool), args.n or N_DEFAULT[name]))
            t0 = time.perf_counter()
            scores = deletion_test(clf, texts, METHODS[family], args.seed, args.steps)
            seconds = time.perf_counter() - t0
            best = max((m for m in scores if m != "random"), key=lambda m: scores[m]["mean_drop"])
            results.append({"dataset": name, "family": family, "n": len(texts), "scores": scores,
                            "most_faithful": best, "seconds": seconds})
            print(f"{name:8s} {family:14s} n={len(texts)}  most faithful: {best}  ({seconds:.0f} s)", flush=True)
    print()
    print("| set | family | method | drop@1 | drop@3 | drop@5 | flip@5 |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        for method, s in r["scores"].items():
            mark = " **(most faithful)**" if method == r["most_faithful"] else ""
            print(f"| {r['dataset']} | {r['family']} | {method}{mark} | {s['drop@1']:.4f} | {s['drop@3']:.4f} | "
                  f"{s['drop@5']:.4f} | {s['flip@5']:.3f} |")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "explain.json"
    done = {(r["dataset"], r["family"]) for r in results}
    old = json.loads(out.read_text())["results"] if out.exists() else []
    results = [r for r in old if (r["dataset"], r["family"]) not in done] + results
    meta = {"machine": machine(), "torch": torch.__version__, "ks": KS, "random_draws": RANDOM_DRAWS, "ig_steps": args.steps,
            "min_tokens": MIN_TOKENS, "seed": args.seed}
    out.write_text(json.dumps({"meta": meta, "results": results}, indent=2))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
