"""The most two processes can gain over one on this machine, without any process group: the ceiling
for ``bench/distributed.py``'s 2-process speed-up (issue 14's target is 1.7x).

Two kinds of work, each run once alone and then as two independent processes at the same time
(1 thread each, no ``torch.distributed``), and the aggregate throughput of the pair compared with
the one alone:

- ``matmul``: a float32 matrix product (compute bound, the vector units), a large tensor copy
  (memory bound) and a plain Python loop (scalar integer work), a fixed number of seconds each.
  Two vCPUs that are hyperthreads of one host core share its vector units (the matrix product
  gains little) but gain more on scalar code; a CPU-time quota slows every kind alike;
- ``allreduce``: the gloo all-reduce itself, 2 processes exchanging tensors of a few sizes back to
  back (the lesson model's and MiniLM's gradients among them);
- ``train``: ``classiformer train`` of a task of ``bench/distributed.py`` with the batch one rank of
  a 2-process run takes (half the batch) on the same rows, so the pair does the work of the two
  ranks without exchanging gradients; its ``train_samples_per_sec`` summed over the pair against
  the same run alone, and against the full batch alone (what the 2-process run is compared with);
  then the pair with the full batch each (the ceiling of ``bench/distributed.py --scaling weak``).

The CPU time the hypervisor gave to other guests while the pair ran (``steal`` in /proc/stat) is
reported with it: on a virtual machine two busy vCPUs may not be two cores' worth of work.

    .venv/bin/python bench/ddp_ceiling.py                     # both, lesson on 5,000 IMDB reviews
    .venv/bin/python bench/ddp_ceiling.py --parts matmul
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
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
RESULTS = HERE / "results"

KERNEL = r"""
import sys, time, torch
torch.set_num_threads(1)
kind, seconds = sys.argv[1], float(sys.argv[2])
if kind == "matmul":
    a, b = torch.randn(256, 256), torch.randn(256, 256)
    work = lambda: torch.mm(a, b)
    unit = 2 * 256 ** 3 / 1e9  # GFLOP per call
elif kind == "python":  # the interpreter's integer work: no vector units, little memory
    def work():
        x = 0
        for i in range(100_000):
            x += i * i
    unit = 0.1  # million loop iterations per call
else:  # copy: 64 MB each way, twice the L3 of the EPYC here
    src, dst = torch.empty(16 * 2 ** 20), torch.empty(16 * 2 ** 20)
    work = lambda: dst.copy_(src)
    unit = 2 * src.numel() * 4 / 1e9  # GB moved per call
for _ in range(3):
    work()
n, t0 = 0, time.perf_counter()
while time.perf_counter() - t0 < seconds:
    work()
    n += 1
print(n * unit / (time.perf_counter() - t0))
"""


ALLREDUCE = r"""
import os, sys, time, torch, torch.distributed as dist
torch.set_num_threads(1)
dist.init_process_group("gloo")
for numel in [int(v) for v in sys.argv[1:]]:
    t = torch.ones(numel)
    for _ in range(5):
        dist.all_reduce(t)
    t0 = time.perf_counter()
    for _ in range(5):
        dist.all_reduce(t)
    # as many as take about 2 s, the same number on both ranks (else the collectives mismatch)
    n = torch.tensor([max(10, int(2.0 / ((time.perf_counter() - t0) / 5)))])
    dist.all_reduce(n, op=dist.ReduceOp.MAX)
    n = int(n.item())
    dist.barrier()
    t0 = time.perf_counter()
    for _ in range(n):
        dist.all_reduce(t)
    if dist.get_rank() == 0:
        print(numel, (time.perf_counter() - t0) / n)
dist.barrier()
dist.destroy_process_group()
"""


def allreduce(sizes: list[int], env: dict[str, str]) -> list[dict[str, Any]]:
    """Seconds per gloo all-reduce of float32 tensors of ``sizes`` elements between 2 processes that
    call it back to back (no waiting for a slower peer): the cost of the exchange itself."""
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "allreduce.py"
        script.write_text(ALLREDUCE)
        (out,), _, st = together([[sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
                                   str(script), *map(str, sizes)]], env)
    rows = []
    for line in out.split("\n"):
        if line.strip():
            numel, secs = line.split()
            rows.append({"part": "allreduce", "numel": int(numel), "mb": int(numel) * 4 / 2 ** 20,
                         "seconds": float(secs), "steal": st, "load": round(os.getloadavg()[0], 2)})
    return rows


def steal() -> tuple[int, int]:
    """(steal, total) jiffies over all CPUs so far."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return fields[7], sum(fields)


def together(cmds: list[list[str]], env: dict[str, str]) -> tuple[list[str], float, float]:
    """Run ``cmds`` at the same time; their stdouts, the wall time and the share of CPU time stolen."""
    s0, t0 = steal()
    start = time.perf_counter()
    procs = [subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for c in cmds]
    outs = []
    for p, c in zip(procs, cmds):
        out, err = p.communicate()
        if p.returncode != 0:
            raise SystemExit(f"{' '.join(c)} failed:\n{err[-3000:]}")
        outs.append(out)
    s1, t1 = steal()
    return outs, time.perf_counter() - start, (s1 - s0) / max(1, t1 - t0)


def kernels(seconds: float, env: dict[str, str]) -> list[dict[str, Any]]:
    rows = []
    for kind in ("matmul", "copy", "python"):
        cmd = [sys.executable, "-c", KERNEL, kind, str(seconds)]
        (alone,), _, st1 = together([cmd], env)
        pair, _, st2 = together([cmd, cmd], env)
        one, both = float(alone), [float(v) for v in pair]
        rows.append({"part": kind, "unit": {"matmul": "GFLOP/s", "copy": "GB/s", "python": "M iter/s"}[kind], "alone": one,
                     "pair_each": both, "pair_total": sum(both), "ratio": sum(both) / one,
                     "steal_alone": st1, "steal_pair": st2, "load": round(os.getloadavg()[0], 2)})
    return rows


def trainings(task: str, rows: int | None, test_rows: int | None, seed: int, env: dict[str, str],
              data_dir: Path) -> list[dict[str, Any]]:
    from distributed import TASKS, subset

    data, flags, batch, default_rows, default_test, _ = TASKS[task]
    flags = [*flags, "--epochs", "1"]
    out: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp_:
        tmp = Path(tmp_)
        train = subset(data_dir / data / "train.jsonl.gz", tmp / "train.jsonl", rows or default_rows)
        test = subset(data_dir / data / "test.jsonl.gz", tmp / "test.jsonl", test_rows or default_test)

        def cmd(name: str, b: int) -> list[str]:
            return [sys.executable, "-m", "classiformer", "train", "--train", str(train), "--test", str(test), *flags,
                    "--seed", str(seed), "--batch-size", str(b), "--threads", "1", "--output", str(tmp / name),
                    "--no-progress", "--overwrite"]

        def sps(name: str) -> float:
            return float(json.loads((tmp / name / "metrics.jsonl").read_text().splitlines()[-1])["train_samples_per_sec"])

        _, _, st = together([cmd("full", batch)], env)
        out.append({"part": f"{task} batch {batch}, alone", "samples_per_sec": sps("full"), "steal": st})
        _, _, st = together([cmd("half", batch // 2)], env)
        out.append({"part": f"{task} batch {batch // 2}, alone", "samples_per_sec": sps("half"), "steal": st})
        # A pair with one rank's half batch each, then (the ceiling of --scaling weak) the full batch each.
        for size in (batch // 2, batch):
            names = [f"pair{size}a", f"pair{size}b"]
            _, _, st = together([cmd(n, size) for n in names], env)
            each = [sps(n) for n in names]
            out.append({"part": f"{task} batch {size}, 2 independent at once", "samples_per_sec": sum(each),
                        "each": each, "steal": st})
        for r in out:
            r["load"] = round(os.getloadavg()[0], 2)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parts", nargs="+", default=["matmul", "allreduce", "train"],
                    choices=["matmul", "allreduce", "train"])
    ap.add_argument("--numel", type=int, nargs="+", default=[2 ** 10, 2 ** 16, 655_000, 22_700_000],
                    help="all-reduce sizes in float32 elements (655k: the lesson model's gradients; "
                    "22.7M: MiniLM's)")
    ap.add_argument("--seconds", type=float, default=10.0, help="length of each kernel run")
    ap.add_argument("--task", default="lesson", help="a task of bench/distributed.py")
    ap.add_argument("--rows", type=int, default=5000)
    ap.add_argument("--test-rows", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--data-dir", type=Path, default=HERE.parents[1] / "shared" / "data")
    ap.add_argument("--json", type=Path, default=RESULTS / "ddp_ceiling.json")
    args = ap.parse_args()

    from hardware import header, machine

    info = machine()
    print(header(info))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result: dict[str, Any] = {"machine": info}
    if "matmul" in args.parts:
        result["kernels"] = kernels(args.seconds, env)
        for r in result["kernels"]:
            print(f"{r['part']:7} alone {r['alone']:7.2f} {r['unit']}, 2 at once {r['pair_total']:7.2f} "
                  f"({' + '.join(f'{v:.2f}' for v in r['pair_each'])}): {r['ratio']:.2f}x; "
                  f"steal {100 * r['steal_pair']:.1f}% of CPU time; load {r['load']}", flush=True)
    if "allreduce" in args.parts:
        result["allreduce"] = allreduce(args.numel, env)
        for r in result["allreduce"]:
            print(f"gloo all-reduce of {r['numel']:>10,} floats ({r['mb']:7.3f} MB), 2 processes: "
                  f"{1000 * r['seconds']:8.3f} ms; load {r['load']}", flush=True)
    if "train" in args.parts:
        result["train"] = trainings(args.task, args.rows, args.test_rows, args.seed, env, args.data_dir)
        base = result["train"][0]["samples_per_sec"]
        for r in result["train"]:
            print(f"{r['part']:45} {r['samples_per_sec']:7.0f} samples/s ({r['samples_per_sec'] / base:.2f}x); "
                  f"steal {100 * r['steal']:.1f}%; load {r['load']}", flush=True)
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
