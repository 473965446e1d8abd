"""Distillation (``classiformer distill``): a MiniLM teacher into from-scratch students, against the
teacher itself and the classic peers (TF-IDF + logistic regression, fastText), side by side in one run.

For each set: the teacher's accuracy and fp32 docs/s; each student size distilled (default alpha
and T) and trained on gold labels alone, with accuracy, docs/s on the same texts as the teacher
(tokenization included, one thread as for every row), and training time including the teacher's
labelling of the transfer set; then, on the ``lesson`` student, what ``--augment`` adds, what
unlabelled texts add (a quarter of the training split keeps its labels, the rest is given as
unlabelled) and an alpha/T grid. ``--unlabeled-from imdb:40000`` distils the default students again
with 40,000 unlabelled sentences of IMDB's training reviews added (for SST-2: in-domain text of
the test's shape; see unlabeled_sentences). Writes bench/results/distill.json and, with ``--plot``, the
accuracy-vs-docs/s figure. Teachers are trained once and kept in /tmp/distill-teachers.

    .venv/bin/python bench/distill.py --sets ag_news --plot docs/distill_tradeoff.png
    .venv/bin/python bench/distill.py --table-only --json docs/distill_tradeoff.json --plot docs/distill_tradeoff.png

The second redraws the docs' plot from the recorded figures (docs/distill_tradeoff.json).
``--retime --json R.json --work W`` times the teachers and students of R.json again, side by side
in one quiet run (a training run's timings sit between hours of training), and rewrites R.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from hardware import header, machine
from scratch import load_set, run_fasttext, run_tfidf

from classiformer import Classifier, distill, evaluate, fit, resolve_config
from classiformer.data import TextDataset
from classiformer.distill import (
    DEFAULT_ALPHA,
    DEFAULT_TEMPERATURE,
    STUDENTS_DIR,
    default_students,
    distill_students,
    teacher_logits,
)
from classiformer.runtime import cpu_features

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"  # the checkout sits next to shared/
TEACHERS = Path("/tmp/distill-teachers")
# The teacher's training subset, token limit, preset and training overrides per set. SST-2's
# teacher is MiniLM fine-tuned (the ``finetune`` preset) on all 67,349 phrases for 1 epoch at 64
# tokens: 20 minutes on the quiet 2-core EPYC (56 samples/s with 2 threads; --train-threads). AG
# News and IMDB keep the ``frozen`` preset (features computed once, a linear head; the same encoder,
# hence the same prediction cost): fine-tuning did not fit the shared machine of that run (load
# 12-16: 6 CPU-minutes in 30 minutes of wall time, not one epoch of 5,472 AG News rows). IMDB's
# teacher is the ``finetune`` preset as users run it (3 epochs) on all 25,000 reviews at 256
# tokens: 52 minutes an epoch on the quiet AVX2-only EPYC (2 threads) on 2026-12-03 morning, 85 that
# afternoon (12 minutes per 100 steps, nothing else running), so it saves a checkpoint every
# TEACHER_CHECKPOINT_EVERY steps and a stopped bench resumes it exactly.
TEACHER_ROWS: dict[str, int | None] = {"ag_news": None, "sst2": None, "imdb": None}
TEACHER_MAX_LENGTH = {"ag_news": 128, "sst2": 64, "imdb": 256}
TEACHER_PRESET = {"ag_news": "frozen", "sst2": "finetune", "imdb": "finetune"}
TEACHER_TRAIN: dict[str, dict[str, Any]] = {"sst2": {"epochs": 1}}
TEACHER_CHECKPOINT_EVERY = 100  # steps (7-12 minutes of IMDB fine-tuning on the EPYC)
TIMING_THREADS = [1]  # --threads: prediction speed is timed on these; training uses --train-threads


def load_bench_set(name: str, data_dir: Path = DATA) -> tuple[TextDataset, TextDataset]:
    return load_set(name, data_dir)


def seeded_indices(total: int, n: int | None, seed: int = 0) -> list[int]:
    """``n`` of ``range(total)`` drawn without replacement (seeded), in order; all of them when
    ``n`` is None or at least ``total``."""
    if n is None or n >= total:
        return list(range(total))
    rng = np.random.default_rng(seed)
    return sorted(rng.choice(total, n, replace=False).tolist())


def subset(ds: TextDataset, n: int | None, seed: int = 0) -> TextDataset:
    return ds if n is None or n >= len(ds) else ds.subset(seeded_indices(len(ds), n, seed))


def timing_texts(test: TextDataset, rows: int) -> list[str]:
    """The texts every model of a set is timed on: a seeded draw of ``rows`` of its test rows."""
    return subset(test, rows, seed=1).texts


def load_average() -> float:
    return round(os.getloadavg()[0], 2)


def save(path: Path, results: dict[str, Any]) -> None:
    """Write ``results`` to ``path`` through a temporary file: an interrupted write never replaces
    the figures already there."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(results, indent=2))
    tmp.replace(path)


# --unlabeled-from: sentences of SENTENCE_WORDS words from another set's training texts, in the
# target's token style. SST-2's texts are Penn Treebank tokens, lowercased ("it 's", "does n't",
# punctuation apart); raw review text would give the word-level students different words for the
# same thing ("it's" against "it 's").
SENTENCE_WORDS = (8, 40)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def ptb_style(text: str) -> str:
    """Lowercased, clitics and punctuation split off as in SST-2's Penn Treebank tokens."""
    s = text.lower()
    s = re.sub(r"n't\b", " n't", s)
    s = re.sub(r"'(s|re|ve|ll|d|m)\b", r" '\1", s)
    s = re.sub(r'([.,!?;:()"])', r" \1 ", s)
    return " ".join(s.split())


def unlabeled_sentences(spec: str, data_dir: Path = DATA, seed: int = 0) -> tuple[list[str], str]:
    """``SET:N``: N sentences (seeded sample) of SET's training texts, labels dropped, HTML line
    breaks removed, each of SENTENCE_WORDS words. Returns the texts and a description."""
    name, _, n = spec.partition(":")
    train, _ = load_set(name, data_dir)
    lo, hi = SENTENCE_WORDS
    sentences = []
    for text in train.texts:
        for sentence in _SENTENCE_END.split(text.replace("<br />", " ").replace("<br/>", " ")):
            s = ptb_style(sentence)
            if lo <= len(s.split()) <= hi:
                sentences.append(s)
    picked = [sentences[i] for i in seeded_indices(len(sentences), int(n) if n else None, seed)]
    take = len(picked)
    return picked, f"{take:,} sentences ({lo}-{hi} words) of {name}'s {len(train):,} training texts, of {len(sentences):,}"


def teacher_run(name: str, train: TextDataset, root: Path = TEACHERS) -> dict[str, Any]:
    """Train the MiniLM teacher (``TEACHER_PRESET``'s defaults) on the set's bounded subset, once:
    a finished run in ``root/name`` is reused, a stopped one (``last/`` without the bench's record)
    resumed from its last checkpoint. ``train_seconds`` adds up every sitting's training time."""
    run = root / name
    info = run / "bench_teacher.json"
    if info.exists():
        return dict(json.loads(info.read_text()))
    rows = subset(train, TEACHER_ROWS[name])
    train_overrides = dict(TEACHER_TRAIN.get(name, {}), checkpoint_every=TEACHER_CHECKPOINT_EVERY)
    if name == "imdb" and cpu_features().native_bf16:
        train_overrides["bf16"] = True  # 256-token reviews: the bf16 matrix units where the CPU has them
    config = resolve_config(TEACHER_PRESET[name], tokenizer={"max_length": TEACHER_MAX_LENGTH[name]},
                            train=train_overrides)
    sittings = run / "bench_teacher_sittings.json"  # seconds of each earlier, stopped sitting
    before = json.loads(sittings.read_text()) if sittings.exists() else []
    resume = (run / "last").exists()
    if resume:
        logging.getLogger("bench").info("%s teacher: resuming %s (earlier sittings: %s s)", name, run, before)
    t0 = time.perf_counter()

    def note_time() -> None:  # every sitting's seconds, this one's so far
        sittings.write_text(json.dumps([*before, time.perf_counter() - t0]))

    def at_checkpoints(step: int) -> None:  # a sitting killed outright still counts up to its last one
        if step % TEACHER_CHECKPOINT_EVERY == 0:
            note_time()

    try:
        result = fit(None if resume else config, rows, run, resume=resume, overwrite=not resume, progress=False,
                     on_step=at_checkpoints)
    except BaseException:  # stopped (SIGTERM, Ctrl-C) or failed: this sitting's time still counts
        note_time()
        raise
    seconds = [*before, time.perf_counter() - t0]
    out = {"run": str(result.best_dir), "preset": TEACHER_PRESET[name], "rows": len(rows), "max_length": TEACHER_MAX_LENGTH[name],
           "train": train_overrides, "threads": torch.get_num_threads(), "sittings_seconds": seconds,
           "train_seconds": sum(seconds), "best_val_accuracy": result.best_val_accuracy}
    info.write_text(json.dumps(out, indent=2))
    return out


def teacher_export(run: Path, precision: str) -> dict[str, Any]:
    """The teacher run exported with ONNX Runtime at ``precision``, once: a finished export in the
    run's parent folder is reused. Returns its folder, the export's seconds and its parity report."""
    from classiformer.export import export_model

    folder = run.parent / f"export-{precision}"
    info = folder.with_name(f"{folder.name}.json")
    if info.exists():
        return dict(json.loads(info.read_text()))
    t0 = time.perf_counter()
    report = export_model(run, folder, precision=precision)
    out = {"folder": str(folder), "precision": report.precision, "export_seconds": time.perf_counter() - t0,
           "parity": report.parity.summary(), "bytes": report.bytes, "fp32_bytes": report.fp32_bytes}
    info.write_text(json.dumps(out, indent=2))
    return out


# Student sizes: (name, preset, model overrides).
STUDENTS: list[tuple[str, str, dict[str, Any]]] = [
    ("small", "lesson", {"embed_dim": 16, "ff_dim": 16, "head_dim": 16, "hidden_dim": 16}),
    ("lesson", "lesson", {}),
    ("base", "base", {}),
    ("rnn", "rnn-attention", {}),
]
# "auto" in --students: classiformer distill's default, each of DEFAULT_STUDENTS trained and the one
# with the lower validation log loss kept (distill.distill_students)


def docs_per_sec(clf: Classifier, texts: list[str], repeats: int = 2) -> float:
    """Best of ``repeats`` passes of ``predict`` (tokenization included) over ``texts``, on
    ``--threads`` threads."""
    training_threads = torch.get_num_threads()
    torch.set_num_threads(TIMING_THREADS[0])
    try:
        clf.predict(texts[:32])  # warm-up
        best = 0.0
        for _ in range(repeats):
            t0 = time.perf_counter()
            clf.predict(texts)
            best = max(best, len(texts) / (time.perf_counter() - t0))
    finally:
        torch.set_num_threads(training_threads)
    return best


def accuracy(clf: Classifier, test: TextDataset) -> float:
    return float(evaluate(clf, test, progress=False)["accuracy"])


def teacher_accuracy(clf: Classifier, test: TextDataset, cache: Path) -> float:
    """The teacher's test accuracy from its logits in the students' cache: labelling 5,000 IMDB
    reviews takes a 2-core CPU minutes, and a rerun after a stopped run reads them back."""
    assert test.labels is not None, "the bench's test sets are labelled"
    predicted = np.asarray(teacher_logits(clf, test.texts, cache)).argmax(axis=1)
    return float(np.mean([clf.labels[i] == gold for i, gold in zip(predicted, test.labels, strict=True)]))


def student(name: str, preset: str, model: dict[str, Any], teacher: Path, train: TextDataset, test: TextDataset,
            timing: list[str], out: Path, cache: Path, seed: int = 42, **kw: Any) -> dict[str, Any]:
    config = resolve_config(preset, model=model, train={"seed": seed})
    t0 = time.perf_counter()
    result = distill([teacher], config, train, out, cache_dir=cache, overwrite=True, progress=False, **kw)
    seconds = time.perf_counter() - t0
    clf = Classifier.load(result.best_dir)
    record = clf.meta.extra["distillation"]
    return {"student": name, "preset": preset, "model": model, "seed": seed, "run": str(result.best_dir),
            "accuracy": accuracy(clf, test),
            "docs_per_sec": docs_per_sec(clf, timing), "train_seconds": seconds,
            "teacher_labelling_seconds": record["teacher_labelling_seconds"], "epochs": len(result.history),
            "transfer_set": record["transfer_set"], "alpha": record["alpha"], "temperature": record["temperature"],
            "params": sum(p.numel() for p in clf.model.parameters())}


def auto_student(teacher: Path, train: TextDataset, test: TextDataset, timing: list[str], out: Path, cache: Path,
                 seed: int = 42, **kw: Any) -> dict[str, Any]:
    # the presets classiformer distill tries on this data (the GRU only for short texts)
    configs = [resolve_config(p, train={"seed": seed}) for p in default_students(train)]
    t0 = time.perf_counter()
    result = distill_students([teacher], configs, train, out, cache_dir=cache, overwrite=True, progress=False, **kw)
    seconds = time.perf_counter() - t0
    clf = Classifier.load(result.best_dir)
    record = clf.meta.extra["distillation"]
    # no choice recorded: distill_students trained the first candidate alone (texts too long for the GRU)
    choice = record.get("student_choice") or {"candidates": [configs[0].preset], "chosen": configs[0].preset}
    return {"student": f"auto ({choice['chosen']})", "preset": choice["chosen"], "model": {}, "seed": seed,
            "run": str(result.best_dir),
            "accuracy": accuracy(clf, test), "docs_per_sec": docs_per_sec(clf, timing), "train_seconds": seconds,
            "teacher_labelling_seconds": record["teacher_labelling_seconds"], "epochs": len(result.history),
            "transfer_set": record["transfer_set"], "alpha": record["alpha"], "temperature": record["temperature"],
            "params": sum(p.numel() for p in clf.model.parameters()), "student_choice": choice,
            # the candidate not kept, on the same test set: what the choice gained or cost
            "others": {n: accuracy(Classifier.load(out / STUDENTS_DIR / n / "best"), test)
                       for n in choice["candidates"] if n != choice["chosen"]}}


def gold_only(name: str, preset: str, model: dict[str, Any], train: TextDataset, test: TextDataset,
              out: Path, seed: int = 42) -> dict[str, Any]:
    config = resolve_config(preset, model=model, train={"seed": seed})
    t0 = time.perf_counter()
    result = fit(config, train, out, overwrite=True, progress=False)
    clf = Classifier.load(result.best_dir)
    return {"student": name, "preset": preset, "seed": seed, "accuracy": accuracy(clf, test), "train_seconds": time.perf_counter() - t0}


def run_set(name: str, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    train, test = load_set(name, args.data)
    test = subset(test, args.test_rows)
    out: dict[str, Any] = {"set": name, "train_rows": len(train), "test_rows": len(test), "timing_rows": args.timing_rows}
    log = logging.getLogger("bench")
    info = teacher_run(name, train, args.teachers)
    teacher = Path(info["run"])
    out["teacher"] = info
    timing = timing_texts(test, args.timing_rows)
    t = Classifier.load(teacher)
    # The labelling time is that of a cold cache: the first student pays it, the others read it
    # (a test text that is also a training text, 29 of IMDB's, is labelled once, here).
    cache = work / name / "teacher_logits"
    out["teacher"]["accuracy"] = teacher_accuracy(t, test, cache)
    out["teacher"]["docs_per_sec_fp32"] = docs_per_sec(t, timing)
    if args.teacher_export != "none":
        # The labelling teacher is the run's own ONNX export (verified against the checkpoint on
        # its validation split by export_model); the speed ratios stay against the PyTorch fp32
        # teacher, the accuracy target against the teacher that labelled.
        from classiformer.export import ExportError

        try:
            exported = teacher_export(teacher, args.teacher_export)
        except ExportError as e:  # the parity rules refused every setting: label through PyTorch
            log.warning("%s: the teacher's %s export was refused, labelling through PyTorch: %s", name,
                        args.teacher_export, e)
            out["teacher"]["export_refused"] = str(e)
        else:
            clf = Classifier.load(exported["folder"])
            exported["accuracy"] = accuracy(clf, test)
            exported["docs_per_sec"] = docs_per_sec(clf, timing)
            out["teacher"]["export"] = exported
            teacher = Path(exported["folder"])
    log.info("%s teacher: %s", name, out["teacher"])
    out["peers"] = {"tfidf_lr": run_tfidf(train, test)}
    try:
        out["peers"]["fasttext"] = run_fasttext(train, test, 0)
    except ImportError:
        log.warning("fasttext is not installed: no fastText row")
    for key in ("tfidf_lr", "fasttext"):
        if key in out["peers"]:
            log.info("%s %s: %.4f", name, key, out["peers"][key]["accuracy"])
    out["students"], out["gold_only"] = [], []
    for sname, preset, model in STUDENTS:
        if sname not in args.students:
            continue
        r = student(sname, preset, model, teacher, train, test, timing, work / name / sname, cache, seed=args.seed)
        out["students"].append(r)
        log.info("%s student %s: %s", name, sname, r)
        g = gold_only(sname, preset, model, train, test, work / name / f"{sname}_gold", seed=args.seed)
        out["gold_only"].append(g)
        log.info("%s gold-only %s: %s", name, sname, g)
        write(args, out)
    if "auto" in args.students:
        r = auto_student(teacher, train, test, timing, work / name / "auto", cache, seed=args.seed)
        out["students"].append(r)
        log.info("%s student auto: %s", name, r)
        write(args, out)
    if args.unlabeled_from:
        texts, described = unlabeled_sentences(args.unlabeled_from, args.data)
        log.info("%s unlabelled transfer texts: %s", name, described)
        r = auto_student(teacher, train, test, timing, work / name / "auto_unlabeled", cache, seed=args.seed, unlabeled=texts)
        r["student"] = f"auto ({r['preset']}) + {len(texts):,} unlabelled"
        r["unlabeled_from"] = described
        out["students"].append(r)
        log.info("%s student auto + unlabelled: %s", name, r)
        write(args, out)
    lesson = [s for s in STUDENTS if s[0] == args.ablate]
    if lesson and not args.no_ablations:
        sname, preset, model = lesson[0]
        # --unlabeled: a quarter of the training split keeps its labels, the rest is unlabelled.
        keep = [i for i in range(len(train)) if i % 4 == 0]
        rest = [i for i in range(len(train)) if i % 4]
        few = train.subset(keep)
        out["unlabeled"] = {
            "gold_rows": len(few), "unlabeled_rows": len(rest),
            "gold_only": gold_only(sname, preset, model, few, test, work / name / "few_gold"),
            "distilled": student(sname, preset, model, teacher, few, test, timing, work / name / "few_kd", cache),
            "distilled_unlabeled": student(sname, preset, model, teacher, few, test, timing, work / name / "few_kd_unl",
                                           cache, unlabeled=[train.texts[i] for i in rest]),
        }
        log.info("%s unlabeled: %s", name, {k: v["accuracy"] for k, v in out["unlabeled"].items() if isinstance(v, dict)})
        write(args, out)
        out["alpha_t"] = []
        for alpha, temperature in [(0.5, 1.0), (0.5, 4.0), (1.0, 2.0)]:
            r = student(sname, preset, model, teacher, train, test, timing, work / name / "grid", cache,
                        alpha=alpha, temperature=temperature)
            out["alpha_t"].append(r)
            log.info("%s alpha %g T %g: %.4f", name, alpha, temperature, r["accuracy"])
            write(args, out)
        out["augment"] = []
        for n in args.augment:
            r = student(sname, preset, model, teacher, train, test, timing, work / name / f"aug{n}", cache, augment=n)
            out["augment"].append(r)
            log.info("%s augment %d: %.4f (%s)", name, n, r["accuracy"], r["transfer_set"])
            write(args, out)
    return out


RESULTS: dict[str, Any] = {"sets": {}}


def student_run(s: dict[str, Any], name: str, work: Path) -> Path:
    """A student's best checkpoint: recorded in its row, or (rows written before runs were
    recorded) where run_set put it under ``work``."""
    if s.get("run"):
        return Path(s["run"])
    folder = "auto_unlabeled" if s.get("unlabeled_from") else "auto" if s["student"].startswith("auto") else s["student"]
    return work / name / folder / "best"


def retime(results: dict[str, Any], args: argparse.Namespace) -> None:
    """Measure again, in this one run, the docs/s of every set's teacher (and its export) and
    students in ``results``, on the texts the training run timed: a ratio is only as good as the
    quiet of the minutes in which both of its sides were timed, and a training run's timings sit
    between hours of training, beside whatever else the machine was doing. The figures of the
    training run are kept beside the new ones (``*_training_run``)."""
    log = logging.getLogger("bench")
    start = machine()
    for name, r in results["sets"].items():
        _, test = load_set(name, args.data)
        # results written before the timed rows were recorded: --timing-rows (their default was 256)
        rows = r.get("timing_rows", args.timing_rows)
        timing = timing_texts(subset(test, r["test_rows"]), rows)
        t = r["teacher"]
        timed: list[tuple[dict[str, Any], str, Path]] = [(t, "docs_per_sec_fp32", Path(t["run"]))]
        if "export" in t:
            timed.append((t["export"], "docs_per_sec", Path(t["export"]["folder"])))
        timed += [(s, "docs_per_sec", student_run(s, name, args.work)) for s in r["students"]]
        for record, key, run in timed:
            if not run.exists():
                raise SystemExit(f"--retime: {run} (of {name}) is gone; rerun the set instead")
            before = record[key]
            record.setdefault(f"{key}_training_run", before)
            record[key] = docs_per_sec(Classifier.load(run), timing, repeats=args.repeats)
            log.info("%s %s: %.1f docs/s (training run: %.1f)", name, run, record[key], before)
    results["meta"]["retimed"] = {"machine": start, "load_average_end": load_average(), "repeats": args.repeats,
                                  "command": " ".join(sys.argv)}


def write(args: argparse.Namespace, current: dict[str, Any]) -> None:
    RESULTS["sets"][current["set"]] = current
    save(args.json, RESULTS)


def table(results: dict[str, Any]) -> str:
    lines = ["| set | model | accuracy | docs/s (1 thread) | vs teacher speed | train s (incl. labelling) |",
             "| --- | --- | --- | --- | --- | --- |"]
    for name, r in results["sets"].items():
        t = r["teacher"]
        lines.append(f"| {name} | teacher MiniLM ({t['preset']}) | {t['accuracy']:.4f} | {t['docs_per_sec_fp32']:,.0f} | 1x | "
                     f"{t['train_seconds']:.0f} |")
        e = t.get("export")
        if e:
            lines.append(f"| {name} | teacher's ONNX {e['precision']} export (the labeller) | {e['accuracy']:.4f} | "
                         f"{e['docs_per_sec']:,.0f} | {e['docs_per_sec'] / t['docs_per_sec_fp32']:,.1f}x | "
                         f"{e['export_seconds']:.0f} (export) |")
        for key, p in r["peers"].items():
            lines.append(f"| {name} | {key} | {p['accuracy']:.4f} | {p['predict_docs_per_sec']:,.0f} | "
                         f"{p['predict_docs_per_sec'] / t['docs_per_sec_fp32']:,.0f}x | {p['train_seconds']:.0f} |")
        gold = {g["student"]: g for g in r["gold_only"]}
        # Students after the first read the teacher's cached logits: each is charged the first's
        # (cold) labelling time, as a run of its own would pay it.
        cold = r["students"][0]["teacher_labelling_seconds"] if r["students"] else 0.0
        for s in r["students"]:
            g = gold.get(gold_name(s))
            total = s["train_seconds"] - s["teacher_labelling_seconds"] + cold
            gold_text = f"{g['accuracy']:.4f}" if g else "not run"
            lines.append(f"| {name} | student {s['student']} (gold only: {gold_text}) | {s['accuracy']:.4f} | "
                         f"{s['docs_per_sec']:,.0f} | {s['docs_per_sec'] / t['docs_per_sec_fp32']:,.0f}x | "
                         f"{total:.0f} ({cold:.0f}) |")
        for s in r.get("alpha_t", []):
            lines.append(f"| {name} | {args_ablate(r)} alpha {s['alpha']} T {s['temperature']} | {s['accuracy']:.4f} | | | |")
        for s in r.get("augment", []):
            lines.append(f"| {name} | {args_ablate(r)} --augment {s['transfer_set']['augmented'] // max(1, s['transfer_set']['gold'])} "
                         f"({s['transfer_set']['augmented']:,} variants) | {s['accuracy']:.4f} | | | "
                         f"{s['train_seconds']:.0f} ({s['teacher_labelling_seconds']:.0f}) |")
        u = r.get("unlabeled")
        if u:
            lines.append(f"| {name} | {u['gold_rows']} gold rows: gold only / distilled / + {u['unlabeled_rows']} unlabelled | "
                         f"{u['gold_only']['accuracy']:.4f} / {u['distilled']['accuracy']:.4f} / "
                         f"{u['distilled_unlabeled']['accuracy']:.4f} | | | |")
    return "\n".join(lines)


def gold_name(s: dict[str, Any]) -> str:
    """The gold-only row of a student: its own, or for ``auto`` the row of the student it kept."""
    if not s["student"].startswith("auto"):
        return str(s["student"])
    return next((n for n, preset, model in STUDENTS if preset == s["preset"] and not model), s["preset"])


def args_ablate(r: dict[str, Any]) -> str:
    return r["students"][0]["student"] if len(r["students"]) == 1 else "lesson"


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sets = list(results["sets"].items())
    fig, axes = plt.subplots(1, len(sets), figsize=(6 * len(sets), 5.4), squeeze=False)
    for ax, (name, r) in zip(axes[0], sets):
        t = r["teacher"]
        ax.scatter([t["docs_per_sec_fp32"]], [t["accuracy"]], marker="*", s=160, color="black", label="teacher MiniLM fp32")
        if "export" in t:
            e = t["export"]
            ax.scatter([e["docs_per_sec"]], [e["accuracy"]], marker="*", s=160, color="tab:purple",
                       label=f"teacher MiniLM, ONNX {e['precision']} (labelled)")
        for key, marker in (("tfidf_lr", "s"), ("fasttext", "^")):
            if key in r["peers"]:
                p = r["peers"][key]
                ax.scatter([p["predict_docs_per_sec"]], [p["accuracy"]], marker=marker, s=60, label=key.replace("_", "+"))
        sized = sorted((s for s in r["students"] if not s["student"].startswith("auto")), key=lambda s: s["docs_per_sec"])
        xs = [s["docs_per_sec"] for s in sized]
        ys = [s["accuracy"] for s in sized]
        settings = sorted({(s["alpha"], s["temperature"]) for s in r["students"]})
        # students of different families and sizes: points, each joined to its gold-only run (what
        # distillation adds or costs), not a curve
        ax.scatter(xs, ys, color="tab:red", zorder=3,
                   label="distilled students" + "".join(f" (alpha {a:g}, T {t:g})" for a, t in settings))
        gold = {g["student"]: g["accuracy"] for g in r["gold_only"]}
        gys = [gold.get(s["student"], np.nan) for s in sized]
        ax.scatter(xs, gys, color="tab:gray", alpha=0.7, label="same students, gold labels only")
        for x, y, gy in zip(xs, ys, gys):
            ax.plot([x, x], [gy, y], color="tab:gray", alpha=0.5, linewidth=1)
        for s in r["students"]:
            if s.get("unlabeled_from"):
                ax.scatter([s["docs_per_sec"]], [s["accuracy"]], marker="P", s=110, color="tab:green", zorder=4,
                           label=f"the default + unlabelled text: {s['student']}")
            elif s["student"].startswith("auto"):
                ax.scatter([s["docs_per_sec"]], [s["accuracy"]], marker="o", s=140, facecolors="none",
                           edgecolors="tab:blue", linewidths=2, zorder=4, label=f"distill's default: {s['student']}")
        # The alpha/T grid's run at today's defaults, where the students above used others: the
        # point the docs' tables quote for the default.
        default = [s for s in r.get("alpha_t", []) if (s["alpha"], s["temperature"]) == (DEFAULT_ALPHA, DEFAULT_TEMPERATURE)
                   and (s["alpha"], s["temperature"]) not in settings]
        for s in default:
            ax.scatter([s["docs_per_sec"]], [s["accuracy"]], marker="D", s=50, color="tab:green", zorder=3,
                       label=f"{s['student']} student at the defaults (alpha {s['alpha']:g}, T {s['temperature']:g})")
        for s in sized:
            # labels left of the points: the fastest student sits at the right edge, where a label
            # to its right was cut off
            ax.annotate(s["student"], (s["docs_per_sec"], s["accuracy"]), textcoords="offset points", xytext=(-6, 4),
                        ha="right", fontsize=8)
        ax.set_xscale("log")
        ax.margins(x=0.08, y=0.08)
        ax.set_xlabel("docs/s, 1 CPU thread, tokenization included (log)")
        ax.set_ylabel("test accuracy")
        ax.set_title(name)
        ax.grid(True, which="both", alpha=0.3)
        # below the axes: inside, every corner of one panel or the other holds points
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, frameon=False)
    fig.suptitle("Distillation: accuracy against prediction speed", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", default="ag_news", help="comma-separated: ag_news, sst2, imdb")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--students", default="small,lesson,base,rnn,auto",
                        help="student sizes/families (small, lesson, base, rnn) and auto (classiformer distill's default); "
                             "none: only the --unlabeled-from run")
    parser.add_argument("--ablate", default="lesson", help="the student of the alpha/T, --augment and --unlabeled runs")
    parser.add_argument("--augment", default="1,2", help="--augment values to try")
    parser.add_argument("--no-ablations", action="store_true")
    parser.add_argument("--unlabeled-from", metavar="SET:N", default=None,
                        help="also distil the default students with N unlabelled sentences of SET's training texts "
                             "(e.g. imdb:40000 for sst2: in-domain sentences; labels dropped)")
    parser.add_argument("--teacher-export", choices=["none", "fp32", "int8"], default="none",
                        help="label with the teacher's ONNX export at this precision (exported once, verified; "
                             "int8: the fastest teacher on a CPU without bf16 units) instead of its PyTorch checkpoint")
    parser.add_argument("--seed", type=int, default=42, help="the students' training seed (the teacher is trained once)")
    parser.add_argument("--test-rows", type=int, default=None, help="bound the test set (seeded subset)")
    parser.add_argument("--timing-rows", type=int, default=256, help="texts timed for docs/s")
    parser.add_argument("--threads", type=int, default=1, help="threads for the timed predictions (docs/s)")
    parser.add_argument("--train-threads", type=int, default=None,
                        help="threads for training and the teacher's labelling (default: --threads)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/distill-bench"))
    parser.add_argument("--teachers", type=Path, default=TEACHERS,
                        help="where each set's teacher is trained once and then reused (SET/bench_teacher.json)")
    parser.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "distill.json")
    parser.add_argument("--plot", type=Path, default=None)
    parser.add_argument("--teacher-only", action="store_true",
                        help="train (or resume) each set's teacher and stop: a teacher longer than one sitting "
                             f"is trained this way in parts, checkpointed every {TEACHER_CHECKPOINT_EVERY} steps")
    parser.add_argument("--table-only", action="store_true", help="print the table (and plot) of --json and stop")
    parser.add_argument("--retime", action="store_true",
                        help="time the teachers and students of --json again in one quiet run (their runs must "
                             "still exist: students under --work), rewrite --json and print the table")
    parser.add_argument("--repeats", type=int, default=2, help="with --retime: timed passes per model (the best counts)")
    args = parser.parse_args()
    args.students = args.students.split(",")
    args.augment = [int(x) for x in args.augment.split(",") if x]
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("classiformer").setLevel(logging.WARNING)
    logging.getLogger("classiformer.distill").setLevel(logging.INFO)
    if args.teacher_only:
        torch.set_num_threads(args.train_threads or args.threads)
        for name in args.sets.split(","):
            train, _ = load_bench_set(name, args.data)
            print(json.dumps({name: teacher_run(name, train, args.teachers)}, indent=2))
        return 0
    if args.table_only or args.retime:
        results = json.loads(args.json.read_text())
        if args.retime:
            TIMING_THREADS[0] = args.threads
            print(header())
            retime(results, args)
            save(args.json, results)
    else:
        TIMING_THREADS[0] = args.threads
        torch.set_num_threads(args.train_threads or args.threads)
        RESULTS["meta"] = {"machine": machine(), "command": " ".join(sys.argv)}
        print(header(RESULTS["meta"]["machine"]))
        for name in args.sets.split(","):
            run_set(name, args, args.work)
        RESULTS["meta"]["load_average_end"] = load_average()
        save(args.json, RESULTS)
        results = RESULTS
    meta = results["meta"]
    # docs/distill_tradeoff.json holds the recorded figures without the machine record
    print(header(meta["machine"]) if "machine" in meta else meta.get("note", ""),
          f"; load at the end {meta.get('load_average_end')}")
    if "retimed" in meta:
        rt = meta["retimed"]
        print(f"docs/s timed again: {header(rt['machine'])}; load at the end {rt['load_average_end']}; "
              f"best of {rt['repeats']} passes per model")
    print(table(results))
    if args.plot:
        plot(results, args.plot)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
