"""The `base` preset's n-gram branch alone (no transformer), trained like a linear model, on the
shapes of bench/shapes.py: how far the "wide" part gets by itself, against TF-IDF + LR and the
whole `base` model (docs/benchmarks.md, "Defaults across data shapes").

The branch is classiformer's ``NgramBranch`` (word and hashed word-pair weights per class, 2^20
buckets, scale 30, zero init) over the ``base`` tokenizer's word ids (100k words, 512 tokens), fit on
the same 90% of the training rows that ``fit`` trains on (seeded split), AdamW lr 1e-3 (weight
decay 0.01), batch 128, a linear decay to zero over the epochs, optionally with the preset's word
deletion (0.4, length-scaled at 24 tokens). No validation: the test accuracy after each fifth of
the epochs is printed, so nothing is selected on test.

    .venv/bin/python bench/ngram_branch.py --sets ag_1k,ag_titles,imdb_1k,ag_5k --epochs 10 --deletion 0,0.4
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hardware import header as machine_header  # noqa: E402
from hardware import machine  # noqa: E402
from shapes import DATA, load_shape  # noqa: E402

from classiformer.config import TransformerConfig  # noqa: E402
from classiformer.models.transformer import NgramBranch, delete_tokens, sample_deletions  # noqa: E402
from classiformer.tokenizers.words import WordVectorizer  # noqa: E402


def run(name: str, epochs: int, deletion: float, seed: int = 0) -> dict[str, Any]:
    train, test = load_shape(name, DATA)
    assert train.labels is not None and test.labels is not None
    labels = sorted(set(train.labels))
    index = {label: i for i, label in enumerate(labels)}
    order = np.random.default_rng(seed).permutation(len(train))
    held = len(train) // 10  # as fit holds out a tenth for validation
    texts = [train.texts[i] for i in order[held:]]
    y = torch.tensor([index[train.labels[i]] for i in order[held:]])
    tok = WordVectorizer.fit(texts, 100_000, 512)
    encoded = tok.encode(texts)

    def padded(rows: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        ids = torch.zeros(len(rows), max(len(r) for r in rows), dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = torch.from_numpy(r)
        return ids, ids != 0

    test_ids, test_keep = padded(tok.encode(test.texts))
    test_y = torch.tensor([index[label] for label in test.labels])
    torch.manual_seed(seed)
    branch = NgramBranch(TransformerConfig(vocab_size=tok.vocab_size, num_labels=len(labels), ngram_buckets=2**20))
    opt = torch.optim.AdamW(branch.parameters(), lr=1e-3, weight_decay=0.01)
    batch, step = 128, 0
    total = epochs * math.ceil(len(texts) / batch)
    t0, curve = time.perf_counter(), []
    for epoch in range(epochs):
        perm = torch.randperm(len(texts)).tolist()
        for b in range(0, len(texts), batch):
            rows = perm[b : b + batch]
            ids, keep = padded([encoded[i] for i in rows])
            if deletion:
                ids, keep = delete_tokens(ids, keep, sample_deletions(keep, deletion, 24), 0)
            for group in opt.param_groups:
                group["lr"] = 1e-3 * max(0.0, 1 - step / total)
            loss = F.cross_entropy(branch(ids, keep), y[rows])
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
        if (epoch + 1) % max(1, epochs // 5) == 0 or epoch == epochs - 1:
            with torch.no_grad():
                curve.append(round(float((branch(test_ids, test_keep).argmax(1) == test_y).float().mean()), 4))
    return {"set": name, "epochs": epochs, "deletion": deletion, "train_rows": len(texts), "test_rows": len(test),
            "test_accuracy_by_fifth": curve, "train_seconds": time.perf_counter() - t0}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", default="ag_1k,ag_titles,imdb_1k,ag_5k")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--deletion", default="0,0.4", help="comma-separated word-deletion rates")
    parser.add_argument("--out", type=Path, default=Path("bench/results/ngram_branch.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    info = machine()
    print(machine_header(info), flush=True)
    results = []
    for name in args.sets.split(","):
        for deletion in (float(x) for x in args.deletion.split(",")):
            r = run(name, args.epochs, deletion)
            results.append(r)
            print(f"{name:<10} deletion {deletion:<4g} test accuracy after each fifth: {r['test_accuracy_by_fifth']} "
                  f"({r['train_seconds']:.0f} s)", flush=True)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps({"meta": {"machine": info, "command": " ".join(sys.argv),
                                                     "load_average_now": os.getloadavg()[0]}, "results": results}, indent=2))
    print(f"load average at the end {os.getloadavg()[0]:.1f}; wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
