"""Training throughput on 1 process x 1 thread against 2 processes x 1 thread (torch.distributed,
gloo, DistributedDataParallel) on the same CPU, with the final test accuracy (issue 14).

Each task trains through the command line, as a user would: ``classiformer train --threads 1`` and
``torchrun --standalone --nproc-per-node 2 -m classiformer train --threads 1``. Two ways to scale
(``--scaling``): ``strong`` (the default) keeps the effective batch (2 processes take half the
batch each, so both take the same optimizer steps); ``weak`` keeps each process's batch, as DDP is
usually run (the effective batch doubles and the steps per epoch halve), with the learning rate
scaled by ``--lr-scale`` (``sqrt``: x sqrt(N), the rule for Adam-style optimizers of Malladi et al.,
2022, "On the SDEs and Scaling Rules for Adaptive Gradient Algorithms"; ``linear``: x N, Goyal et
al., 2017, for SGD), and ``--epochs`` long enough that both runs finish training, so their final
accuracies can be compared.
The figure is ``train_samples_per_sec`` of the last line of ``metrics.jsonl``: the examples of all
ranks over rank 0's time in the training loop (startup and validation excluded). The peers run in
turn for each seed, side by side in one run, with the load average before each run, because the
ratio only means something on a quiet machine: on a 2-core machine that others share, two
processes compete with them for the second core.

Tasks: ``lesson`` (the lesson preset on IMDB, 25k train / 25k test reviews, 1 epoch) and
``minilm`` (MiniLM fine-tuning on a subset of SST-2, max length 64, 1 epoch). ``--rows`` and
``--test-rows`` cut both down for a quick run on a busy machine.

    .venv/bin/python bench/distributed.py                                   # 3 seeds, both tasks
    .venv/bin/python bench/distributed.py --seeds 1 --rows 4000 --test-rows 2000 --tasks lesson

On a machine that others share, run it as ``flock /tmp/bench.lock bench/priority.sh .venv/bin/python
bench/distributed.py ...``: with autogroup scheduling, ``nice`` in other sessions does not keep their
jobs off the cores, and torchrun starts each worker in a session of its own (see bench/priority.sh).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
DATA = HERE.parents[1] / "shared" / "data"  # the checkout sits next to shared/
RESULTS = HERE / "results"

# task -> (data set, classiformer train flags, batch size of one process, default train rows, test rows,
# the preset whose learning rate --scaling weak scales)
TASKS: dict[str, tuple[str, list[str], int, int | None, int | None, str]] = {
    "lesson": ("imdb", ["--preset", "lesson"], 128, None, None, "lesson"),
    "minilm": ("sst2", ["--model", "minilm", "--max-length", "64", "--attention-dropout", "0"],
               32, 4000, 872, "finetune"),
}
LR_SCALE = {"none": lambda n: 1.0, "sqrt": lambda n: n ** 0.5, "linear": lambda n: float(n)}


def subset(src: Path, dest: Path, rows: int | None) -> Path:
    """``rows`` rows of a .jsonl.gz drawn with a fixed seed, in file order (every row without a
    limit), as plain JSONL. Not the first rows: IMDB's files are sorted by label."""
    with gzip.open(src, "rt", encoding="utf-8") as f:
        lines = f.readlines()
    if rows is not None and rows < len(lines):
        lines = [lines[i] for i in sorted(random.Random(0).sample(range(len(lines)), rows))]
    dest.write_text("".join(lines), encoding="utf-8")
    return dest


def run_one(nproc: int, task: str, seed: int, train: Path, test: Path, tmp: Path, accum: int = 1,
            scaling: str = "strong", lr_scale: str = "none", epochs: int = 1) -> dict[str, Any]:
    from classiformer.config import resolve_config

    data, flags, batch, _, _, preset = TASKS[task]
    out = tmp / f"{task}-{nproc}p-{seed}"
    accum = accum if nproc > 1 else 1
    per_process = batch // nproc // accum if scaling == "strong" else batch // accum
    lr = resolve_config(preset).train.lr * (LR_SCALE[lr_scale](nproc) if scaling == "weak" else 1.0)
    train_cmd = ["train", "--train", str(train), "--test", str(test), *flags, "--epochs", str(epochs),
                 "--seed", str(seed), "--lr", f"{lr:g}", "--batch-size", str(per_process), "--grad-accum", str(accum),
                 "--threads", "1", "--output", str(out), "--no-progress", "--overwrite"]
    if nproc == 1:
        cmd = [sys.executable, "-m", "classiformer", *train_cmd]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
               "-m", "classiformer", *train_cmd]
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    from classiformer.training import read_history

    history = read_history(out)
    last = history[-1]
    metrics = json.loads((out / "metrics.json").read_text())
    return {"task": task, "nproc": nproc, "seed": seed, "samples_per_sec": last["train_samples_per_sec"],
            "test_accuracy": metrics["accuracy"], "effective_batch": per_process * accum * nproc, "lr": lr,
            "epochs": len(history), "steps": last["step"], "wall_seconds": wall, "load_before": round(load, 2),
            "load_after": round(os.getloadavg()[0], 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    ap.add_argument("--seeds", type=int, default=3, help="seeds 1..N, each run by both peers in turn")
    ap.add_argument("--rows", type=int, default=None, help="training rows (default: the task's)")
    ap.add_argument("--test-rows", type=int, default=None, help="test rows (default: the task's)")
    ap.add_argument("--grad-accum", type=int, default=1,
                    help="the 2-process runs accumulate this many micro-batches per step (the same effective batch: "
                    "each micro-batch is smaller), so they all-reduce that many times less often")
    ap.add_argument("--scaling", choices=("strong", "weak"), default="strong",
                    help="strong: the 2 processes split the batch (same steps); weak: each keeps the batch of one "
                    "process (twice the effective batch, half the steps per epoch)")
    ap.add_argument("--lr-scale", choices=sorted(LR_SCALE), default="sqrt",
                    help="with --scaling weak: the learning rate of N processes (default sqrt: x sqrt(N))")
    ap.add_argument("--epochs", type=int, default=1, help="epochs of every run (default 1)")
    ap.add_argument("--data-dir", type=Path, default=DATA, help="the benchmark data (default: shared/data beside "
                    "the checkout)")
    ap.add_argument("--json", type=Path, default=RESULTS / "distributed.json")
    args = ap.parse_args()

    from hardware import header, machine

    info = machine()
    print(header(info))
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp_:
        tmp = Path(tmp_)
        for task in args.tasks:
            data, _, _, rows, test_rows, _ = TASKS[task]
            train = subset(args.data_dir / data / "train.jsonl.gz", tmp / f"{data}-train.jsonl", args.rows or rows)
            test = subset(args.data_dir / data / "test.jsonl.gz", tmp / f"{data}-test.jsonl", args.test_rows or test_rows)
            for seed in range(1, args.seeds + 1):
                for nproc in (1, 2):
                    r = run_one(nproc, task, seed, train, test, tmp, args.grad_accum, args.scaling, args.lr_scale,
                                args.epochs)
                    runs.append(r)
                    print(f"  {task} seed {seed} {nproc} process(es): {r['samples_per_sec']:.0f} samples/s, "
                          f"test accuracy {r['test_accuracy']:.4f}, effective batch {r['effective_batch']}, "
                          f"lr {r['lr']:g}, {r['epochs']} epoch(s), {r['steps']} steps "
                          f"(load {r['load_before']} -> {r['load_after']})", flush=True)
    summary = []
    print(f"\n{'task':8} {'processes':>9} {'samples/s (median)':>19} {'test accuracy (mean)':>21} {'speed-up':>9}")
    for task in args.tasks:
        base = None
        for nproc in (1, 2):
            rs = [r for r in runs if r["task"] == task and r["nproc"] == nproc]
            sps = statistics.median(r["samples_per_sec"] for r in rs)
            acc = statistics.mean(r["test_accuracy"] for r in rs)
            base = base or sps
            summary.append({"task": task, "nproc": nproc, "samples_per_sec": sps, "test_accuracy": acc,
                            "speedup": sps / base, "seeds": len(rs)})
            print(f"{task:8} {nproc:>9} {sps:>19.0f} {acc:>21.4f} {sps / base:>8.2f}x")
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"machine": info, "args": {k: str(v) for k, v in vars(args).items()},
                                     "runs": runs, "summary": summary}, indent=2))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
