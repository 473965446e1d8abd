"""MiniLM fine-tuning samples/s on one GPU against the same through torchrun with NCCL, bf16
(issue 14, for a session that is lent a GPU; results: docs/benchmarks.md, "Startup, cluster engines and GPU").

Runs ``classiformer train --model minilm --device cuda --bf16`` on an SST-2 subset in one plain
process, then ``torchrun --standalone --nproc-per-node G -m classiformer train ...`` with G = the
GPUs visible (each process takes the GPU of its LOCAL_RANK, NCCL), with the same effective batch.
NCCL cannot put two ranks on one GPU, so with one GPU the second run is a single torchrun process
(no process group: the launcher's cost only); with G >= 2 it is DistributedDataParallel on G GPUs.
Prints the table and writes bench/results/gpu_ddp.json.

    .venv/bin/python bench/gpu_ddp.py                       # about 3 minutes on an H200
    .venv/bin/python bench/gpu_ddp.py --rows 20000 --epochs 1
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
DATA = HERE.parents[1] / "shared" / "data"
RESULTS = HERE / "results"


def main() -> None:
    from distributed import subset  # bench/distributed.py
    from hardware import header, machine

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=20000)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=64, help="effective batch (split over the processes)")
    ap.add_argument("--data-dir", type=Path, default=DATA)
    ap.add_argument("--json", type=Path, default=RESULTS / "gpu_ddp.json")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("no CUDA GPU: this benchmark needs one")
    gpus = torch.cuda.device_count()
    info = machine()
    print(header(info))
    rows = []
    with tempfile.TemporaryDirectory() as tmp_:
        tmp = Path(tmp_)
        train = subset(args.data_dir / "sst2" / "train.jsonl.gz", tmp / "train.jsonl", args.rows)
        test = subset(args.data_dir / "sst2" / "test.jsonl.gz", tmp / "test.jsonl", None)
        for nproc, launcher in ((1, "plain"), (gpus, "torchrun")):
            out = tmp / f"{launcher}{nproc}"
            flags = ["train", "--train", str(train), "--test", str(test), "--model", "minilm", "--device", "cuda",
                     "--bf16", "--epochs", str(args.epochs), "--max-length", "64", "--batch-size",
                     str(args.batch_size // nproc), "--output", str(out), "--no-progress"]
            if launcher == "plain":
                cmd = [sys.executable, "-m", "classiformer", *flags]
            else:
                cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
                       "-m", "classiformer", *flags]
            t0 = time.perf_counter()
            proc = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ))
            if proc.returncode:
                raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
            last = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
            acc = json.loads((out / "metrics.json").read_text())["accuracy"]
            rows.append({"launcher": launcher, "processes": nproc, "samples_per_sec": last["train_samples_per_sec"],
                         "test_accuracy": acc, "wall_seconds": time.perf_counter() - t0})
            print(f"{launcher:9} {nproc} process(es): {rows[-1]['samples_per_sec']:.0f} samples/s, "
                  f"test accuracy {acc:.4f}", flush=True)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"machine": info, "gpus": gpus, "rows": rows}, indent=2))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
