"""Does a batch of a shape the GPU has not seen yet cost more than a seen one?

The first epoch of IMDB fine-tuning on an H200 took four times as long as the next two (length-bucketed
batches: hundreds of distinct (batch, length) shapes, each new in epoch 1). This probe times MiniLM
training steps (batches of 32, bf16 autocast, no attention dropout) over the same list of distinct
lengths twice, then over those lengths rounded up to a multiple of 64 (few distinct shapes):

    python bench/gpu_shapes.py --model FOLDER_OR_ID [--steps 120]

Run it once plainly and once with PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True to see whether
the cost is the allocator's.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import torch
import torch.nn.functional as F
from hardware import header, machine

from classiformer.config import PretrainedConfig, TokenizerConfig
from classiformer.models import PretrainedClassifier


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="minilm")
    ap.add_argument("--steps", type=int, default=120, help="distinct lengths per pass")
    ap.add_argument("--device", default="cuda")
    args = ap.parse_args()
    print(header(), flush=True)

    model, _ = PretrainedClassifier.from_source(
        PretrainedConfig(source=args.model, mode="finetune", num_labels=2, attention_dropout=0.0),
        TokenizerConfig(kind="hf", max_length=512),
    )
    dev = torch.device(args.device)
    model.to(dev).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=True)
    rng = np.random.default_rng(0)
    lengths = [int(x) for x in rng.permutation(np.arange(64, 513))[: args.steps]]

    def step(length: int) -> None:
        ids = torch.randint(1000, 20000, (32, length), device=dev)
        with torch.autocast(dev.type, dtype=torch.bfloat16):
            logits = model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits
        F.cross_entropy(logits.float(), torch.zeros(32, dtype=torch.long, device=dev)).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    def timed(name: str, seq: list[int]) -> dict[str, float]:
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        for length in seq:
            step(length)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        secs = time.perf_counter() - t
        tokens = 32 * sum(seq)
        row = {"pass": name, "steps": len(seq), "distinct_shapes": len(set(seq)), "seconds": round(secs, 2),
               "ms_per_step": round(1000 * secs / len(seq), 1), "tokens_per_sec": round(tokens / secs)}
        print(json.dumps(row), flush=True)
        return row

    step(64)  # load kernels and the optimizer state once
    rounded = [-(-n // 64) * 64 for n in lengths]
    rows = [timed("new lengths", lengths), timed("same lengths again", lengths),
            timed("rounded up to 64 (first time)", rounded), timed("rounded up to 64 (again)", rounded)]
    print(json.dumps({"machine": machine(), "alloc_conf": os.environ.get("PYTORCH_CUDA_ALLOC_CONF", ""),
                      "device": torch.cuda.get_device_name(0) if dev.type == "cuda" else "cpu", "rows": rows}))


if __name__ == "__main__":
    main()
