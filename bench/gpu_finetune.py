"""Full-set fine-tuning of a pretrained encoder on a GPU, through the command line users run.

Runs ``classiformer train`` (and ``evaluate --long-text chunks`` for IMDB) for each planned
configuration, in order, inside a time budget: a run starts only when the time left covers its
estimate (the first IMDB and SST-2 runs' measured times scale to the later ones). With
``--tests`` the ``--device cuda`` test file runs first. Prints a table and writes JSON.

    python bench/gpu_finetune.py --model MODEL --data ../shared/data --runs runs/gpu --budget 480 --tests

Results and the reasons for the plan: docs/benchmarks.md, section 2 ("IMDB, three epochs on a GPU").
``--small N`` keeps N training and N test rows of each set: a minutes-long rehearsal on a CPU.
"""

from __future__ import annotations

import argparse
import gzip
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# name, set, extra training flags, epochs. IMDB: the CPU recipe (512 tokens head-tail, lr 5e-5,
# no attention dropout) with the third epoch the CPU could not afford, then the same with BERT's
# attention dropout. SST-2: the standard 3-epoch GLUE recipe at two rates, then seeds of the best
# CPU recipe (1 epoch at 5e-5), to see the spread.
PLAN = [
    ("imdb_e3_ad0", "imdb", ["--lr", "5e-5", "--attention-dropout", "0"], 3),
    ("sst2_e3_lr5e-5", "sst2", ["--lr", "5e-5"], 3),
    ("sst2_e3_lr2e-5", "sst2", ["--lr", "2e-5"], 3),
    ("sst2_e1_lr5e-5_s1", "sst2", ["--lr", "5e-5", "--seed", "1"], 1),
    ("sst2_e1_lr5e-5_s2", "sst2", ["--lr", "5e-5", "--seed", "2"], 1),
    ("imdb_e3_ad01", "imdb", ["--lr", "5e-5"], 3),
]
SET_FLAGS = {
    "imdb": ["--max-length", "512", "--long-text", "head-tail"],
    "sst2": ["--max-length", "64"],
}


def data_file(root: Path, name: str, split: str) -> Path:
    for suffix in (".jsonl.gz", ".jsonl"):
        if (root / name / f"{split}{suffix}").exists():
            return root / name / f"{split}{suffix}"
    raise SystemExit(f"error: no {name}/{split}.jsonl[.gz] under {root}")


def shrink(src: Path, dst: Path, n: int) -> Path:
    """The first ``n`` rows of each label of a JSON-lines file (a rehearsal set)."""
    opener = gzip.open if src.suffix == ".gz" else open
    kept: dict[object, int] = {}
    with opener(src, "rt", encoding="utf-8") as f, dst.open("w", encoding="utf-8") as out:
        for line in f:
            label = json.loads(line)["label"]
            if kept.get(label, 0) < n:
                kept[label] = kept.get(label, 0) + 1
                out.write(line)
    return dst


def run(cmd: list[str], log: Path, timeout: float) -> tuple[int, float]:
    t0 = time.perf_counter()
    with log.open("w") as f:
        print("$", " ".join(cmd), file=f, flush=True)
        try:
            rc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, timeout=timeout, cwd=ROOT).returncode
        except subprocess.TimeoutExpired:
            rc = 124
    return rc, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="pretrained encoder: alias, hub id or folder")
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"), help="folder with imdb/ and sst2/")
    ap.add_argument("--runs", default="runs/gpu", help="folder for the run folders and logs")
    ap.add_argument("--budget", type=float, default=480, help="seconds for everything (default: 480)")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--tests", action="store_true", help="run tests/test_cuda.py first")
    ap.add_argument("--small", type=int, default=0, help="rows per label of each set (rehearsal); 0: all")
    ap.add_argument("--only", nargs="*", help="plan entries to run (default: all, in order)")
    ap.add_argument("--json", default=None, help="results file (default: RUNS/results.json)")
    args = ap.parse_args()

    start = time.perf_counter()
    runs = Path(args.runs)
    runs.mkdir(parents=True, exist_ok=True)
    import torch
    import transformers
    from hardware import header, machine

    print(header(), flush=True)

    results: dict[str, object] = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": machine(),
        "torch": torch.__version__, "transformers": transformers.__version__, "model": args.model,
        "small": args.small, "runs": [],
    }
    if args.tests:
        rc, secs = run([sys.executable, "-m", "pytest", "-q", "-rs", "tests/test_cuda.py"], runs / "tests.log", 300)
        results["tests"] = {"rc": rc, "seconds": round(secs, 1), "tail": (runs / "tests.log").read_text()[-600:]}
        print(f"tests/test_cuda.py: rc {rc} in {secs:.0f} s")

    files = {}
    for name in ("imdb", "sst2"):
        train, test = data_file(Path(args.data), name, "train"), data_file(Path(args.data), name, "test")
        if args.small:
            train = shrink(train, runs / f"{name}_train_small.jsonl", args.small)
            test = shrink(test, runs / f"{name}_test_small.jsonl", args.small)
        files[name] = (train, test)

    per_epoch: dict[str, float] = {}  # measured seconds per epoch (plus fixed costs) per set
    rows = []
    for name, dataset, flags, epochs in PLAN:
        if args.only and name not in args.only:
            continue
        left = args.budget - (time.perf_counter() - start)
        estimate = per_epoch.get(dataset, 0) * (epochs + 1)
        if estimate > left or left < 20:
            print(f"{name}: skipped ({left:.0f} s left, about {estimate:.0f} s needed)")
            rows.append({"name": name, "skipped": True})
            continue
        out = runs / name
        train, test = files[dataset]
        cmd = [sys.executable, "-m", "classiformer", "train", "--model", args.model, "--mode", "finetune",
               "--train", str(train), "--test", str(test), "--epochs", str(epochs), "--bf16",
               "--device", args.device, "--output", str(out), "--overwrite", "--no-progress",
               *SET_FLAGS[dataset], *flags]
        rc, secs = run(cmd, runs / f"{name}.log", max(left - 5, 1))
        per_epoch.setdefault(dataset, secs / (epochs + 1))  # the +1 covers loading, testing, calibration
        row: dict[str, object] = {"name": name, "set": dataset, "epochs": epochs, "flags": " ".join(flags),
                                  "rc": rc, "seconds": round(secs, 1)}
        if rc == 0:
            m = json.loads((out / "metrics.json").read_text())
            row.update(accuracy=m["accuracy"], val_accuracy=m["best_val_accuracy"], best_epoch=m["best_epoch"],
                       train_samples_per_sec=round(m["train_samples_per_sec"], 1),
                       eval_docs_per_sec=round(m["eval_docs_per_sec"], 1))
            if dataset == "imdb" and args.budget - (time.perf_counter() - start) > 30:
                rc2, secs2 = run([sys.executable, "-m", "classiformer", "evaluate", str(out), "--test", str(test),
                                  "--long-text", "chunks", "--bf16", "--device", args.device, "--no-progress",
                                  "--output", str(out / "chunks")], runs / f"{name}_chunks.log",
                                 max(args.budget - (time.perf_counter() - start) - 5, 1))
                if rc2 == 0:
                    row["accuracy_chunks"] = json.loads((out / "chunks" / "metrics.json").read_text())["accuracy"]
        rows.append(row)
        print(json.dumps(row), flush=True)
    results["runs"] = rows
    results["seconds"] = round(time.perf_counter() - start, 1)

    print(f"\n{'run':<20} {'set':<5} {'ep':>2} {'val acc':>8} {'test acc':>9} {'chunks':>7} {'train/s':>8} {'secs':>6}")
    for r in rows:
        if r.get("skipped"):
            print(f"{r['name']:<20} skipped")
            continue
        acc = f"{r['accuracy']:.4f}" if "accuracy" in r else f"rc {r['rc']}"
        chunks = f"{r['accuracy_chunks']:.4f}" if "accuracy_chunks" in r else ""
        val = f"{r['val_accuracy']:.4f}" if "val_accuracy" in r else ""
        print(f"{r['name']:<20} {r['set']:<5} {r['epochs']:>2} {val:>8} {acc:>9} {chunks:>7} "
              f"{r.get('train_samples_per_sec', ''):>8} {r['seconds']:>6}")
    path = Path(args.json) if args.json else runs / "results.json"
    path.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
