"""What `classiformer tune` finds, and what `--report-to tensorboard,mlflow` costs.

search: for each set (the AG News split, SST-2), a 30-trial Optuna study (TPE, median pruner, the
default from-scratch space of `tuning.DEFAULT_SPACES["transformer"]`) from `--preset` (lesson) within
a time budget; the best trial's model, the untuned preset (and `base`, with `--base-default`) and TF-IDF+LR are tested on
the set's test split. With `--minilm`, the same for MiniLM fine-tuning (the pretrained space) on a
small SST-2 subset against the `finetune` preset. It prints what the search found (best
parameters, Optuna's parameter importances, pruned trials) so the presets can learn from it.

overhead: the `lesson` preset trained with and without `--report-to tensorboard,mlflow`, A B A B
in one process (ratios hold on a loaded machine; absolute figures do not), samples/s as training
reports them and the wall time of the whole run (MLflow's run creation and model upload included).

    .venv/bin/python bench/tune.py search --sets ag_news,sst2 --trials 30 --timeout 1200
    .venv/bin/python bench/tune.py overhead --pairs 4

The AG News train set is not available offline, so its canonical 7,600-row test set is split as in
bench/scratch.py (rows whose index is divisible by 5 test, the rest train). SST-2's test is the GLUE
dev set (872 sentences); `--sst2-train N` takes a stratified subset of its 67k training phrases.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from hardware import header as machine_header
from hardware import machine
from scratch import DATA, load_set, run_tfidf

from classiformer import Classifier, evaluate, fit, resolve_config
from classiformer.data import TextDataset, stratified_split
from classiformer.runtime import set_threads
from classiformer.tracking import start_tracking
from classiformer.tuning import tune

log = logging.getLogger("bench.tune")


def subset(ds: TextDataset, n: int | None, seed: int = 0) -> TextDataset:
    if not n or n >= len(ds):
        return ds
    _, kept = stratified_split(ds, n / len(ds), seed)
    return kept


def sentence_validation(train: TextDataset, n: int, seed: int = 0) -> tuple[TextDataset, TextDataset]:
    """Hold out ``n`` whole SST-2 sentences, and drop every training phrase inside them.

    SST-2's training set holds each phrase of every sentence's parse tree (67,349 phrases of about
    6,900 sentences), so a random split puts parts of one sentence on both sides: validation then
    rewards memorising, and a search on it picks little dropout and little word deletion that test
    worse on the GLUE dev sentences (measured: docs/benchmarks.md, "Hyperparameter search"). A
    sentence here is a phrase that no longer phrase contains.
    """
    import random

    texts = [t.strip() for t in train.texts]
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    joined, recent, sentences = "", [], []
    for i in order:  # longest first: a phrase inside a longer one is never a sentence
        if texts[i] in joined or any(texts[i] in r for r in recent):
            continue
        sentences.append(i)
        recent.append(texts[i])
        if len(recent) >= 200:  # search one long string rather than thousands of short ones
            joined += "\0" + "\0".join(recent)
            recent = []
    held = random.Random(seed).sample(sentences, min(n, len(sentences)))
    inside = "\0".join(texts[i] for i in held)
    held_set = set(held)
    kept = [i for i in range(len(texts)) if i not in held_set and texts[i] not in inside]
    log.info("SST-2 validation: %d of %d sentences held out; %d of %d training phrases kept (the rest lie "
             "inside a held-out sentence)", len(held), len(sentences), len(kept), len(texts))
    return train.subset(kept), train.subset(sorted(held))


def test_accuracy(run_dir: Path, test: TextDataset) -> float:
    return float(evaluate(Classifier.load(run_dir), test, progress=False)["accuracy"])


def search(name: str, train: TextDataset, test: TextDataset, out: Path, args: argparse.Namespace, preset: str,
           model: dict[str, Any] | None = None, validation: TextDataset | None = None) -> dict[str, Any]:
    import optuna

    t0 = time.perf_counter()
    result = tune(train, out / f"{name}_{preset}", validation=validation, preset=preset, overrides={"model": model or {}},
                  trials=args.trials, timeout=args.timeout, progress=False, seed=args.seed)
    search_s = time.perf_counter() - t0
    study = optuna.load_study(study_name=result.study_name, storage=result.storage)
    assert result.best_run is not None
    tuned = test_accuracy(result.best_run, test)
    t0 = time.perf_counter()
    default = fit(resolve_config(preset, model=model or {}), train, out / f"{name}_{preset}_default",
                  validation=validation, overwrite=True, progress=False)
    default_s = time.perf_counter() - t0
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    try:
        importances = optuna.importance.get_param_importances(study) if len(complete) > 1 else {}
    except (ValueError, RuntimeError):
        importances = {}
    return {
        "set": name, "preset": preset, "train": len(train), "test": len(test),
        "validation": len(validation) if validation is not None else "stratified tenth of train",
        "trials": len(trials), "complete": len(complete), "pruned": sum(t.state.name == "PRUNED" for t in trials),
        "search_seconds": search_s, "best_trial": result.best_trial, "best_val_accuracy": result.best_value,
        "best_params": result.best_params, "importances": dict(importances),
        "best_trial_seconds": next((t.duration.total_seconds() for t in trials if t.number == result.best_trial), None),
        "tuned_test_accuracy": tuned,
        "default_val_accuracy": default.best_val_accuracy, "default_test_accuracy": test_accuracy(default.run_dir, test),
        "default_seconds": default_s,
    }


def run_search(args: argparse.Namespace, out: Path) -> list[dict[str, Any]]:
    rows = []
    for name in [n for n in args.sets.split(",") if n and n != "none"]:
        train, test = load_set(name, args.data_dir)
        validation = None
        if name == "sst2":
            if args.sst2_validation:
                train, validation = sentence_validation(train, args.sst2_validation, args.seed)
            train = subset(train, args.sst2_train)
        log.info("%s: %d train / %d test", name, len(train), len(test))
        row = search(name, train, test, out, args, args.preset, validation=validation)
        row["tfidf_test_accuracy"] = run_tfidf(train, test)["accuracy"]
        if args.base_default and args.preset != "base":
            base = fit(resolve_config("base"), train, out / f"{name}_base_default", overwrite=True, progress=False)
            row["base_default_test_accuracy"] = test_accuracy(base.run_dir, test)
        rows.append(row)
        print_search([row])
    if args.minilm:
        train, test = load_set("sst2", args.data_dir)
        validation = None
        if args.sst2_validation:
            train, validation = sentence_validation(train, args.sst2_validation, args.seed)
        row = search("sst2_minilm", subset(train, args.minilm_train), test, out, args, "finetune",
                     model={"source": "minilm", "attention_dropout": 0.0}, validation=validation)
        rows.append(row)
        print_search([row])
    return rows


def print_search(rows: list[dict[str, Any]]) -> None:
    print("| set | preset | train | trials (complete / pruned) | search s | val acc tuned / default | "
          "test acc tuned | default | TF-IDF+LR |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        tfidf = f"{r['tfidf_test_accuracy']:.4f}" if "tfidf_test_accuracy" in r else "—"
        print(f"| {r['set']} | {r['preset']} | {r['train']:,} | {r['trials']} ({r['complete']} / {r['pruned']}) | "
              f"{r['search_seconds']:.0f} | {r['best_val_accuracy']:.4f} / {r['default_val_accuracy']:.4f} | "
              f"{r['tuned_test_accuracy']:.4f} | {r['default_test_accuracy']:.4f} | {tfidf} |")
    for r in rows:
        params = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in r["best_params"].items())
        imp = ", ".join(f"{k} {v:.2f}" for k, v in r["importances"].items())
        print(f"{r['set']} best (trial {r['best_trial']}): {params}")
        print(f"{r['set']} importances: {imp}")


def run_overhead(args: argparse.Namespace, out: Path) -> dict[str, Any]:
    train, _ = load_set("ag_news", args.data_dir)
    config = {"epochs": args.overhead_epochs, "batch_size": 32}
    uri = f"sqlite:///{out / 'mlflow.db'}"
    os.chdir(out)  # MLflow's artifacts go to ./mlruns
    start_tracking("mlflow", uri)  # imports mlflow before the clock starts
    rows: dict[str, list[tuple[float, float]]] = {"none": [], "tensorboard,mlflow": []}
    order = ["none", "tensorboard,mlflow"]
    for i in range(args.pairs + 1):  # the first pair warms up (MLflow's store tables, imports)
        for report_to in order if i % 2 == 0 else order[::-1]:
            run = out / f"overhead_{i}_{report_to.replace(',', '_')}"
            t0 = time.perf_counter()
            with start_tracking(report_to, uri if "mlflow" in report_to else None) as tracker:
                result = fit(resolve_config("lesson", train=config), train, run, overwrite=True, progress=False,
                             callbacks=[tracker] if tracker else [])
            wall = time.perf_counter() - t0
            if i:
                rows[report_to].append((result.train_samples_per_sec, wall))
            log.info("overhead %d %s: %.0f samples/s, %.1f s", i, report_to, result.train_samples_per_sec, wall)
    plain, tracked = rows["none"], rows["tensorboard,mlflow"]
    ratios = [t[0] / p[0] for p, t in zip(plain, tracked)]
    walls = [t[1] / p[1] for p, t in zip(plain, tracked)]
    summary = {
        "pairs": args.pairs, "train": len(train), "epochs": args.overhead_epochs, "batch_size": 32,
        "samples_per_sec_none": [p[0] for p in plain], "samples_per_sec_tracked": [t[0] for t in tracked],
        "wall_none": [p[1] for p in plain], "wall_tracked": [t[1] for t in tracked],
        "ratio_samples_per_sec_median": statistics.median(ratios), "ratio_wall_median": statistics.median(walls),
    }
    print("| runs | samples/s without (median) | with tensorboard,mlflow | ratio (median of pairs) | "
          "wall s without / with | wall ratio |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    print(f"| {args.pairs} pairs, A B B A | {statistics.median(summary['samples_per_sec_none']):,.0f} | "
          f"{statistics.median(summary['samples_per_sec_tracked']):,.0f} | {summary['ratio_samples_per_sec_median']:.3f} | "
          f"{statistics.median(summary['wall_none']):.1f} / {statistics.median(summary['wall_tracked']):.1f} | "
          f"{summary['ratio_wall_median']:.3f} |")
    return summary


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=["search", "overhead"])
    p.add_argument("--sets", default="ag_news,sst2", help="comma-separated: ag_news, sst2 (or none, with --minilm alone)")
    p.add_argument("--trials", type=int, default=30)
    p.add_argument("--preset", default="lesson", help="what the from-scratch search starts from, and the default it is compared with")
    p.add_argument("--base-default", action="store_true", help="also test the untuned base preset")
    p.add_argument("--timeout", type=float, default=1200.0, help="search budget per set, seconds")
    p.add_argument("--sst2-train", type=int, default=8000, help="SST-2 training phrases (0: all 67,349)")
    p.add_argument("--sst2-validation", type=int, default=1000,
                   help="validate SST-2 runs on this many whole training sentences, their phrases removed from "
                   "train (0: a stratified tenth of the phrases, which leaks: see sentence_validation)")
    p.add_argument("--minilm", action="store_true", help="also tune MiniLM fine-tuning on an SST-2 subset")
    p.add_argument("--minilm-train", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0, help="sampler seed")
    p.add_argument("--pairs", type=int, default=4)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: the cores the load average leaves free)")
    p.add_argument("--overhead-epochs", type=int, default=2)
    p.add_argument("--data-dir", type=Path, default=DATA, help="benchmark data (default: ../shared/data)")
    p.add_argument("--out", default=None, help="work folder (default: a temporary one)")
    p.add_argument("--json", default="bench/results/tune.json")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr)
    for noisy in ("classiformer", "optuna"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # As the CLI does: on a busy machine two threads wait on each other (bench/threads.py: 10x slower).
    set_threads(args.threads)
    info = machine()
    print(machine_header(info))
    out = Path(args.out or tempfile.mkdtemp(prefix="bench-tune-"))
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"machine": info, "args": vars(args)}
    if args.what == "search":
        results["search"] = run_search(args, out)
    else:
        results["overhead"] = run_overhead(args, out)
    results["load_average_end"] = machine()["load_average_1min"]
    print(f"load average at the end: {results['load_average_end']}")
    path = Path(args.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, default=str))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
