"""Training on data larger than memory (issue 14, section 2): ``train --streaming`` on a corpus
of millions of rows with its memory over time, streaming against in-memory training on the same
rows, a tokenizer fit on a sample against one fit on everything, and ``predict --processes``.

The corpus is built from the AG News test set in ../shared/data (7,600 rows; row index % 5 == 0 is
the evaluation split, never copied; the other 6,080 are the base rows): ``--copies`` copies of the
base rows, each copy with its own noise (two words of every text dropped at random, seeded by the
copy), shuffled within blocks of 100,000 rows, written to ``--workdir`` (default /tmp, never
committed). Phases (``--phases``, all by default):

- ``stream``: ``classiformer train --streaming`` on the whole corpus for ``--max-steps`` steps, the
  process tree's memory sampled every 2 s (resident set of the training process; proportional set
  size, PSS, of it and its DataLoader workers together, which counts shared pages once); samples/s,
  the first pass's time and the test accuracy.
- ``same-rows``: the first ``--subset`` rows of the corpus, trained once in memory (one epoch) and
  once streaming (one pass, the same number of steps), with the same validation file (copy
  ``copies`` of 2,000 base rows, not in the subset) and test set: accuracy and peak memory of both.
- ``tokenizer``: SST-2 (67,349 training phrases, 872 test), streaming, the words tokenizer fit on
  a sample of ``--samples`` texts against one fit on every text, the same steps and seeds.
- ``predict``: ``classiformer predict --input`` over the first ``--predict-rows`` rows, in 1 and in
  2 processes: docs/s and memory over time.

    .venv/bin/python bench/streaming.py                                   # everything, ~30 minutes
    .venv/bin/python bench/streaming.py --phases stream --max-steps 500   # a quick look

The table is printed; JSON goes to bench/results/streaming.json with the machine (bench/hardware.py).
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import os
import random
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hardware import header as machine_header  # noqa: E402
from hardware import machine  # noqa: E402

DATA = Path("/work/shared/data") if Path("/work/shared/data").exists() else Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
RESULTS = Path(__file__).resolve().parent / "results"
AG_LABELS = {"1": "World", "2": "Sports", "3": "Business", "4": "Sci/Tech"}
BLOCK = 100_000


def ag_rows(data: Path) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(label, text) of the AG News base rows and of the evaluation split."""
    base, held = [], []
    with (data / "ag_news" / "test.csv").open(newline="", encoding="utf-8") as f:
        for i, (label, title, body) in enumerate(csv.reader(f)):
            row = (AG_LABELS[label], f"{title} {body}".replace("\\", " "))
            (held if i % 5 == 0 else base).append(row)
    return base, held


def write_csv(path: Path, rows: Any) -> int:
    n = 0
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["label", "text"])
        for row in rows:
            w.writerow(row)
            n += 1
    return n


def noisy_copies(base: list[tuple[str, str]], copies: range, seed: int) -> Any:
    """Copies of ``base``, each text with two of its words dropped (seeded by the copy), shuffled in blocks."""
    words = [(label, text.split()) for label, text in base]
    block: list[tuple[str, str]] = []
    rng = random.Random(seed)
    for c in copies:
        r = np.random.default_rng([seed, c])
        cut = r.random((len(words), 2))
        for (label, ws), (a, b) in zip(words, cut):
            n = len(ws)
            i, j = int(a * n), int(b * n)
            block.append((label, " ".join(w for k, w in enumerate(ws) if k != i and k != j) or ws[0]))
        if len(block) >= BLOCK:
            rng.shuffle(block)
            yield from block
            block = []
    rng.shuffle(block)
    yield from block


def build_corpus(work: Path, copies: int, data: Path) -> dict[str, Any]:
    base, held = ag_rows(data)
    corpus = work / "corpus.csv"
    t = time.perf_counter()
    count = work / "corpus.rows"
    if not (corpus.exists() and count.exists() and count.read_text() == str(copies * len(base))):
        count.write_text(str(write_csv(corpus, noisy_copies(base, range(copies), 1))))
    write_csv(work / "eval.csv", held)
    write_csv(work / "validation.csv", list(noisy_copies(base[:2000], range(copies, copies + 1), 1)))
    return {"rows": copies * len(base), "base_rows": len(base), "eval_rows": len(held),
            "bytes": corpus.stat().st_size, "seconds": round(time.perf_counter() - t, 1)}


def tree(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
        except OSError:
            pass
    return out


def memory(pid: int) -> tuple[float, float]:
    """(resident MB of ``pid``, PSS MB of ``pid`` and its descendants)."""
    rss = pss = 0.0
    for i, p in enumerate(tree(pid)):
        try:
            with open(f"/proc/{p}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Rss:") and i == 0:
                        rss = int(line.split()[1]) / 1024
                    elif line.startswith("Pss:"):
                        pss += int(line.split()[1]) / 1024
        except OSError:
            pass
    return rss, pss


def run_sampled(args: list[str], log: Path, every: float = 2.0) -> dict[str, Any]:
    """Run ``args``, sampling its memory; its stderr goes to ``log``."""
    t0 = time.perf_counter()
    samples: list[tuple[float, float, float]] = []
    with log.open("w") as err:
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=err, text=True)
        stop = threading.Event()

        def sample() -> None:
            while not stop.wait(every):
                rss, pss = memory(proc.pid)
                if rss:
                    samples.append((round(time.perf_counter() - t0, 1), round(rss, 1), round(pss, 1)))

        th = threading.Thread(target=sample, daemon=True)
        th.start()
        out, _ = proc.communicate()
        stop.set()
        th.join()
    if proc.returncode:
        raise RuntimeError(f"{' '.join(args)} failed ({proc.returncode}); see {log}")
    return {"seconds": round(time.perf_counter() - t0, 1), "stdout": out, "memory": samples}


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "classiformer", *args]


def train_run(out: Path, train: Path, test: Path, extra: list[str], log: Path) -> dict[str, Any]:
    r = run_sampled(cli("train", "--train", str(train), "--test", str(test), "--output", str(out), "--overwrite",
                        "--no-progress", "--threads", "1", *extra), log)
    history = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    metrics = json.loads((out / "metrics.json").read_text())
    first_pass = None
    text = log.read_text()
    for line in text.splitlines():  # the log lines carry no time; the first pass ends where the model line is logged
        if "first pass:" in line:
            first_pass = line.split("first pass:")[1].strip()
    mem = r["memory"]
    return {
        "seconds": r["seconds"], "accuracy": metrics["accuracy"], "samples_per_sec": history[-1]["train_samples_per_sec"],
        "steps": history[-1]["step"], "first_pass": first_pass,
        "peak_rss_mb": max((m[1] for m in mem), default=None), "peak_pss_mb": max((m[2] for m in mem), default=None),
        "memory": mem,
    }


def flatness(mem: list[list[float]] | list[tuple[float, float, float]], skip: float) -> dict[str, Any]:
    """Memory after the first ``skip`` seconds: min, max, and the growth from the first to the last quarter."""
    tail = [m for m in mem if m[0] >= skip]
    if len(tail) < 8:
        return {}
    q = max(1, len(tail) // 4)
    first, last = np.mean([m[2] for m in tail[:q]]), np.mean([m[2] for m in tail[-q:]])
    return {"from_s": skip, "pss_min_mb": min(m[2] for m in tail), "pss_max_mb": max(m[2] for m in tail),
            "rss_min_mb": min(m[1] for m in tail), "rss_max_mb": max(m[1] for m in tail),
            "pss_growth_first_to_last_quarter_mb": round(float(last - first), 1)}


LESSON = ["--preset", "lesson", "--batch-size", "128"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--phases", default="stream,same-rows,tokenizer,predict")
    ap.add_argument("--workdir", default="/tmp/classiformer-streaming-bench")
    ap.add_argument("--data-dir", default=str(DATA))
    ap.add_argument("--copies", type=int, default=823, help="copies of the 6,080 base rows (823: 5,003,840 rows)")
    ap.add_argument("--max-steps", type=int, default=3000)
    ap.add_argument("--eval-every", type=int, default=1000)
    ap.add_argument("--subset", type=int, default=200_000)
    ap.add_argument("--samples", default="2000,10000", help="tokenizer sample sizes to compare with all texts")
    ap.add_argument("--seeds", default="1,2")
    ap.add_argument("--predict-rows", type=int, default=400_000)
    ap.add_argument("--output", default=str(RESULTS / "streaming.json"))
    a = ap.parse_args()
    work = Path(a.workdir)
    work.mkdir(parents=True, exist_ok=True)
    phases = a.phases.split(",")
    info = machine()
    print(machine_header(info), flush=True)
    results: dict[str, Any] = {"machine": info, "args": vars(a)}
    out_path = Path(a.output)
    out_path.parent.mkdir(parents=True, exist_ok=True)

    def save() -> None:
        out_path.write_text(json.dumps(results, indent=1))

    results["corpus"] = build_corpus(work, a.copies, Path(a.data_dir))
    print(f"corpus: {results['corpus']}", flush=True)
    corpus, test, val = work / "corpus.csv", work / "eval.csv", work / "validation.csv"
    save()

    if "stream" in phases:
        r = train_run(work / "run_stream", corpus, test,
                      [*LESSON, "--streaming", "--max-steps", str(a.max_steps), "--eval-every", str(a.eval_every),
                       "--loader-workers", "1"], work / "stream.log")
        r["flat"] = flatness(r["memory"], skip=r["seconds"] * 0.25)
        r["load_after"] = os.getloadavg()[0]
        results["stream"] = r
        save()
        print(f"stream: {r['steps']} steps, {r['samples_per_sec']:.0f} samples/s, accuracy {r['accuracy']:.4f}, "
              f"{r['seconds']} s; first pass {r['first_pass']}; memory {r['flat']}", flush=True)

    if "same-rows" in phases:
        subset = work / f"subset_{a.subset}.csv"
        if not subset.exists():
            with corpus.open(encoding="utf-8") as src, subset.open("w", encoding="utf-8") as dst:
                for i, line in enumerate(src):  # the corpus has no multi-line records
                    if i > a.subset:
                        break
                    dst.write(line)
        steps = -(-a.subset // 128)
        same = {}
        for name, extra in (("memory", ["--epochs", "1"]),
                            ("streaming", ["--streaming", "--max-steps", str(steps), "--eval-every", str(steps)])):
            r = train_run(work / f"run_same_{name}", subset, test, [*LESSON, "--validation", str(val), *extra],
                          work / f"same_{name}.log")
            same[name] = {k: v for k, v in r.items() if k != "memory"}
            print(f"same rows, {name}: accuracy {r['accuracy']:.4f}, {r['samples_per_sec']:.0f} samples/s, peak RSS "
                  f"{r['peak_rss_mb']} MB, PSS {r['peak_pss_mb']} MB", flush=True)
        results["same_rows"] = {"rows": a.subset, "steps": steps, **same}
        save()

    if "tokenizer" in phases:
        sst = Path(a.data_dir) / "sst2"
        sst_test = work / "sst2_test.jsonl"
        with gzip.open(sst / "test.jsonl.gz", "rt", encoding="utf-8") as f:
            sst_test.write_text(f.read())
        with gzip.open(sst / "train.jsonl.gz", "rt", encoding="utf-8") as f:
            rows = sum(1 for _ in f)
        steps = -(-int(rows * 0.9) // 128)  # one pass over the 90% not held out
        tok: dict[str, list[float]] = {}
        for sample in [*a.samples.split(","), "all"]:
            n = str(10**9) if sample == "all" else sample
            for seed in a.seeds.split(","):
                out = work / f"run_tok_{sample}_{seed}"
                r = train_run(out, sst / "train.jsonl.gz", sst_test,
                              [*LESSON, "--streaming", "--max-steps", str(steps), "--eval-every", str(steps),
                               "--tokenizer-sample", n, "--seed", seed], work / f"tok_{sample}_{seed}.log")
                vocab = len(json.loads((out / "best" / "tokenizer" / "vocab.json").read_text()))
                tok.setdefault(sample, []).append(r["accuracy"])
                tok.setdefault(f"{sample}_vocab", []).append(vocab)
                print(f"tokenizer sample {sample}, seed {seed}: accuracy {r['accuracy']:.4f}, vocabulary {vocab}",
                      flush=True)
        results["tokenizer"] = {"train_rows": rows, "steps": steps, **tok}
        save()

    if "predict" in phases:
        rows_file = work / f"predict_{a.predict_rows}.csv"
        if not rows_file.exists():
            with corpus.open(encoding="utf-8") as src, rows_file.open("w", encoding="utf-8") as dst:
                for i, line in enumerate(src):
                    if i > a.predict_rows:
                        break
                    dst.write(line)
        model = work / "run_stream" if (work / "run_stream" / "best").exists() else work / "run_same_memory"
        pred = {}
        for processes in (1, 2):
            out = work / f"pred_{processes}.csv"
            r = run_sampled(cli("predict", str(model), "--input", str(rows_file), "-o", str(out), "--no-progress",
                                "--threads", "2", "--processes", str(processes)), work / f"pred_{processes}.log")
            mem = r.pop("memory")
            pred[str(processes)] = {"seconds": r["seconds"], "docs_per_sec": round(a.predict_rows / r["seconds"], 1),
                                    "flat": flatness(mem, skip=r["seconds"] * 0.25), "memory": mem}
            print(f"predict, {processes} process(es): {pred[str(processes)]['docs_per_sec']} docs/s, memory "
                  f"{pred[str(processes)]['flat']}", flush=True)
        same_output = (work / "pred_1.csv").read_bytes() == (work / "pred_2.csv").read_bytes()
        results["predict"] = {"rows": a.predict_rows, "identical_output": same_output, **pred}
        save()
    results["load_end"] = os.getloadavg()[0]
    save()
    print(f"wrote {out_path}")


if __name__ == "__main__":
    main()
