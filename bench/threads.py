"""Threads and OpenMP wait policy on a quiet and on a loaded CPU (issue 18, item 20).

PyTorch's CPU thread pool is OpenMP (libgomp). A thread that finishes its share of a parallel
region spins, waiting for the others, for GOMP_SPINCOUNT iterations (300,000 by default, "some
milliseconds"; without end under OMP_WAIT_POLICY=ACTIVE) before sleeping. When other processes share
the cores, the peer it waits for is often descheduled, so the spinning burns the time slice that
peer needed: every parallel region then costs a scheduler tick. OMP_WAIT_POLICY=PASSIVE makes
waiting threads sleep at once. (OpenMP 5.2 specification, section 6.7, OMP_WAIT_POLICY; libgomp
manual, GOMP_SPINCOUNT.)

Each setting trains the ``lesson`` preset for one epoch on the AG News split (the 7,600 canonical
rows, 0-based index % 5 != 0; as bench/scratch.py) and predicts the evaluation split (index % 5 == 0),
in a fresh process (the wait policy is read when the OpenMP runtime starts), a few times each, in
turn. "loaded" runs one CPU hog (``while True: pass``) per available core beside it, started and
killed by this script. Prints a table of medians and writes bench/results/threads.json.

    .venv/bin/python bench/threads.py                  # about 8 minutes on 2 cores
    .venv/bin/python bench/threads.py --reps 1 --states loaded
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DATA = HERE.parents[1] / "shared" / "data"  # the checkout sits next to shared/
RESULTS = HERE / "results"
WAIT_VARS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")

# name -> (environment for the run, --threads; 0 means classiformer's default: every available core).
# GOMP_SPINCOUNT=300000 is what libgomp does when OMP_WAIT_POLICY is unset (the old default); setting
# it keeps classiformer from choosing a policy.
SETTINGS: dict[str, tuple[dict[str, str], int]] = {
    "defaults": ({}, 0),
    "spin-300k": ({"GOMP_SPINCOUNT": "300000"}, 0),
    "active": ({"OMP_WAIT_POLICY": "ACTIVE"}, 0),
    "passive": ({"OMP_WAIT_POLICY": "PASSIVE"}, 0),
    "spin-10k": ({"GOMP_SPINCOUNT": "10000"}, 0),
    "1-thread": ({}, 1),
}


def worker(args: argparse.Namespace) -> None:
    """One measurement, in this fresh process: train 1 epoch, then predict the evaluation split."""
    sys.path.insert(0, str(HERE))
    from scratch import load_set

    from classiformer import Classifier, fit, resolve_config
    from classiformer.runtime import set_threads

    threads = set_threads(args.threads)
    train, test = load_set("ag_news", args.data_dir)
    cfg = resolve_config("lesson", train={"epochs": args.epochs, "seed": 1})
    with tempfile.TemporaryDirectory() as tmp:
        result = fit(cfg, train, tmp, progress=False)
        clf = Classifier.load(result.best_dir)
        clf.predict(test.texts[:64])  # first call builds kernels
        t = time.perf_counter()
        clf.predict(test.texts)
        predict_s = time.perf_counter() - t
    print(json.dumps({"threads": threads, "train_samples_per_sec": result.train_samples_per_sec,
                      "predict_docs_per_sec": len(test) / predict_s,
                      "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
                      "gomp_spincount": os.environ.get("GOMP_SPINCOUNT")}))


def measure(env: dict[str, str], threads: int, args: argparse.Namespace) -> dict[str, Any]:
    full = {k: v for k, v in os.environ.items() if k not in WAIT_VARS} | env
    cmd = [sys.executable, __file__, "--worker", "--threads", str(threads), "--epochs", str(args.epochs),
           "--data-dir", str(args.data_dir)]
    out = subprocess.run(cmd, env=full, capture_output=True, text=True, timeout=600)
    if out.returncode:
        raise SystemExit(f"worker failed ({' '.join(cmd)}):\n{out.stderr}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def start_hogs(n: int) -> list[subprocess.Popen[bytes]]:
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]


def stop_hogs(hogs: list[subprocess.Popen[bytes]]) -> None:
    for h in hogs:
        h.kill()
    for h in hogs:
        h.wait()


def write(args: argparse.Namespace, info: dict[str, Any], results: list[dict[str, Any]]) -> None:
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"machine": info, "command": " ".join(sys.argv), "epochs": args.epochs,
                                     "reps": args.reps, "results": results}, indent=2))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", type=Path, default=DATA)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--reps", type=int, default=3, help="runs of each setting in each state (median reported)")
    ap.add_argument("--states", default="quiet,loaded")
    ap.add_argument("--settings", default=None, help="comma-separated subset of the setting names (default: all): "
                    + ", ".join(SETTINGS))
    ap.add_argument("--json", type=Path, default=RESULTS / "threads.json")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--threads", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args)
        return 0
    # Imported here: the parent may start torch's thread pool, the workers start their own.
    from hardware import header, machine

    from classiformer.runtime import available_cpus

    info = machine()
    print(header(info), flush=True)
    names = args.settings.split(",") if args.settings else list(SETTINGS)
    hog_count = available_cpus()
    results: list[dict[str, Any]] = []
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so that the hogs are stopped (finally)
    for state in args.states.split(","):
        hogs = start_hogs(hog_count) if state == "loaded" else []
        try:
            runs: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
            for _ in range(args.reps):  # settings in turn, so a drift in load hits them all alike
                for name in names:
                    env, threads = SETTINGS[name]
                    runs[name].append(measure(env, threads, args) | {"load_average_1min": os.getloadavg()[0]})
                    print(f"  {state} {name}: {json.dumps(runs[name][-1])}", flush=True)
        finally:
            stop_hogs(hogs)
        for name in names:
            rs = runs[name]
            results.append({
                "state": state, "setting": name, "env": SETTINGS[name][0], "threads": rs[0]["threads"],
                "omp_wait_policy": rs[0]["omp_wait_policy"], "hogs": len(hogs),
                "train_samples_per_sec": statistics.median(r["train_samples_per_sec"] for r in rs),
                "predict_docs_per_sec": statistics.median(r["predict_docs_per_sec"] for r in rs),
                "runs": rs,
            })
        write(args, info, results)  # after each state: a long run keeps what it measured
    head = f"{'state':<7} {'setting':<10} {'env':<28} {'threads':>7} {'train samples/s':>15} {'predict docs/s':>14}"
    print(head)
    print("-" * len(head))
    for r in results:
        env = " ".join(f"{k}={v}" for k, v in r["env"].items()) or "-"
        print(f"{r['state']:<7} {r['setting']:<10} {env:<28} {r['threads']:>7} {r['train_samples_per_sec']:>15,.0f} "
              f"{r['predict_docs_per_sec']:>14,.0f}")
    write(args, info, results)
    print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
