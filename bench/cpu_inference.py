"""CPU inference of a pretrained encoder (MiniLM) against ``transformers.pipeline``, on short
(SST-2) and news-length (AG News) texts, and what bf16 costs on this CPU (issue 18, item 21).

- matrix products at MiniLM's shapes in fp32 and bf16 (GFLOP/s): without bf16 matrix units
  (AVX512-BF16, AMX) PyTorch emulates bf16 and it is slower than fp32;
- docs/s of ``Classifier.predict`` in fp32, in bf16 as the library chooses it (it falls back to fp32
  on such CPUs) and in bf16 forced (CLASSIFORMER_BF16=force), against ``pipeline(
  "text-classification")`` at its default batch size and at batch_size=32, with label agreement;
- where our time goes: tokenization vs the model.

The model to time is fine-tuned here for a few steps (speed does not depend on how well it is
trained; the label agreement is then the only accuracy figure) unless ``--model RUN`` names one.

    .venv/bin/python bench/cpu_inference.py                       # about 10 minutes on 2 busy cores
    .venv/bin/python bench/cpu_inference.py --model runs/x --ag-docs 1520

Prints a table and writes bench/results/cpu_inference.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from hardware import header, machine
from pretrained import load_ag_news, load_jsonl

from classiformer import Classifier, fit, resolve_config
from classiformer.runtime import BF16_FORCE_ENV

RESULTS = Path(__file__).parent / "results"


def matmul_gflops(dtype: torch.dtype, m: int, k: int, n: int, seconds: float = 1.0) -> float:
    """GFLOP/s of (m, k) @ (k, n) in ``dtype``, repeated for about ``seconds``."""
    a, b = torch.randn(m, k).to(dtype), torch.randn(k, n).to(dtype)
    a @ b
    reps, t = 0, time.perf_counter()
    while time.perf_counter() - t < seconds:
        a @ b
        reps += 1
    return 2.0 * m * k * n * reps / (time.perf_counter() - t) / 1e9


def best_rate(fn: Any, n: int, reps: int) -> tuple[float, Any]:
    """docs/s of ``fn()`` over ``n`` docs, best of ``reps`` (the least disturbed run on a shared CPU)."""
    best, out = float("inf"), None
    for _ in range(reps):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return n / best, out


def race(run: Path, texts: list[str], bf16_texts: list[str], max_length: int, reps: int) -> dict[str, Any]:
    from transformers import pipeline

    r: dict[str, Any] = {"docs": len(texts), "bf16_docs": len(bf16_texts)}
    clf = Classifier.load(run, device="cpu")
    clf.predict(texts[:8])
    r["ours_fp32"], ours = best_rate(lambda: clf.predict(texts), len(texts), reps)
    # where the time goes: the tokenizer alone
    r["ours_tokenize_docs_per_sec"], _ = best_rate(lambda: clf.tokenizer.encode(texts), len(texts), reps)
    r["ours_bf16_default_dtype"] = str(Classifier.load(run, device="cpu", bf16=True).dtype)
    os.environ[BF16_FORCE_ENV] = "force"
    try:
        forced = Classifier.load(run, device="cpu", bf16=True)
    finally:
        del os.environ[BF16_FORCE_ENV]
    forced.predict(bf16_texts[:8])
    r["ours_bf16_forced"], ours_bf16 = best_rate(lambda: forced.predict(bf16_texts), len(bf16_texts), 1)
    pipe = pipeline("text-classification", model=str(run), tokenizer=str(run / "tokenizer" / "hf"), device=-1)
    kw = {"truncation": True, "max_length": max_length}
    pipe(texts[:8], **kw)
    r["pipeline_default"], p_def = best_rate(lambda: [x["label"] for x in pipe(texts, **kw)], len(texts), reps)
    r["pipeline_bs32"], p_32 = best_rate(lambda: [x["label"] for x in pipe(texts, batch_size=32, **kw)], len(texts), reps)
    best = max(r["pipeline_default"], r["pipeline_bs32"])
    r["ours_vs_best_pipeline"] = r["ours_fp32"] / best
    r["bf16_forced_vs_fp32"] = r["ours_bf16_forced"] / r["ours_fp32"]
    r["label_agreement_vs_pipeline"] = float(np.mean(np.array(ours) == np.array(p_def)))
    r["label_agreement_bf16_vs_fp32"] = float(np.mean(np.array(ours_bf16) == np.array(ours[: len(bf16_texts)])))
    lengths = np.array([len(x) for x in clf.tokenizer.encode(texts)])
    r["tokens_mean"], r["tokens_max"] = float(lengths.mean()), int(lengths.max())
    return r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    ap.add_argument("--model", type=Path, default=None, help="a fine-tuned MiniLM run (default: fine-tune one here)")
    ap.add_argument("--train-examples", type=int, default=640, help="AG News rows for the quick fine-tune")
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--ag-docs", type=int, default=512, help="AG News evaluation texts to time")
    ap.add_argument("--sst-docs", type=int, default=872, help="SST-2 test sentences to time")
    ap.add_argument("--bf16-docs", type=int, default=64, help="texts for the (slow) forced-bf16 timing")
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--json", type=Path, default=RESULTS / "cpu_inference.json")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    info = machine()
    print(header(info), flush=True)
    res: dict[str, Any] = {"machine": info, "args": {k: str(v) for k, v in vars(args).items()}}
    # MiniLM's matrix products: a batch of 32 x 64 tokens through the feed-forward (384 -> 1536).
    res["matmul_gflops"] = {str(dt).removeprefix("torch."): matmul_gflops(dt, 2048, 384, 1536)
                            for dt in (torch.float32, torch.bfloat16)}
    print(f"matmul 2048x384 @ 384x1536: fp32 {res['matmul_gflops']['float32']:.1f} GFLOP/s, "
          f"bf16 {res['matmul_gflops']['bfloat16']:.1f} GFLOP/s", flush=True)
    ag_train, ag_eval = load_ag_news(args.data)
    sst = load_jsonl(args.data / "sst2" / "test.jsonl.gz", None)
    with tempfile.TemporaryDirectory() as tmp:
        run = args.model
        if run is None:
            rng = np.random.default_rng(0)
            sub = ag_train.subset(sorted(rng.choice(len(ag_train), args.train_examples, replace=False).tolist()))
            cfg = resolve_config("finetune", model={"source": "minilm"}, tokenizer={"max_length": args.max_length},
                                 train={"epochs": 1, "batch_size": 32, "lr": 5e-5, "seed": 0, "patience": 0})
            t = time.perf_counter()
            run = fit(cfg, sub, Path(tmp) / "run", progress=False).best_dir
            res["finetune"] = {"examples": len(sub), "steps": -(-len(sub) // 32), "seconds": time.perf_counter() - t}
            print(f"fine-tuned MiniLM on {len(sub)} AG News rows in {res['finetune']['seconds']:.0f} s", flush=True)
        for name, texts in (("sst2", sst.texts[: args.sst_docs]), ("ag_news", ag_eval.texts[: args.ag_docs])):
            res[name] = race(Path(run), texts, texts[: args.bf16_docs], args.max_length, args.reps)
            print(name, json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in res[name].items()}), flush=True)
    print(f"\n{'texts':<8} {'tokens':>6} {'ours fp32':>10} {'bf16 forced':>11} {'pipe default':>12} {'pipe bs32':>10} "
          f"{'ours/best pipe':>14}  (docs/s)")
    for name in ("sst2", "ag_news"):
        r = res[name]
        print(f"{name:<8} {r['tokens_mean']:>6.1f} {r['ours_fp32']:>10.1f} {r['ours_bf16_forced']:>11.1f} "
              f"{r['pipeline_default']:>12.1f} {r['pipeline_bs32']:>10.1f} {r['ours_vs_best_pipeline']:>13.2f}x")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(res, indent=2))
    print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
