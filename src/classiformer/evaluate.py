"""Evaluation: metrics on a labelled set, written with plots into the run folder."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from .calibration import calibration_report
from .checkpoint import atomic_write_text
from .data.datasets import TextDataset, check_labels_known
from .inference import softmax
from .metrics import classification_report
from .plots import plot_confusion_matrix, plot_reliability, plot_training_curves
from .predict import Classifier
from .training import HISTORY_FILE

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.json"


def evaluate(clf: Classifier, dataset: TextDataset, progress: bool = True) -> dict[str, Any]:
    """Accuracy, macro-F1, per-class precision/recall/F1 and confusion matrix on ``dataset``,
    the evaluation throughput in documents per second, and calibration: negative log-likelihood
    and expected calibration error before (``*_uncalibrated``) and after temperature scaling with
    the checkpoint's stored ``temperature``, with the reliability-diagram bins of both."""
    check_labels_known(dataset, clf.labels)
    assert dataset.labels is not None
    index = {lbl: i for i, lbl in enumerate(clf.labels)}
    t0 = time.perf_counter()
    logits = clf.logits(dataset.texts, progress=progress)
    proba = softmax(logits, clf.temperature)
    seconds = time.perf_counter() - t0
    y_true = np.array([index[lbl] for lbl in dataset.labels], dtype=np.int64)
    report = classification_report(y_true, proba.argmax(1), clf.labels)
    report["eval_docs_per_sec"] = len(dataset) / max(seconds, 1e-9)
    report["source"] = dataset.source
    cal = calibration_report(logits, y_true, clf.temperature)
    for key in ("temperature", "nll", "ece", "nll_uncalibrated", "ece_uncalibrated"):
        report[key] = cal[key]
    report["reliability"] = {"uncalibrated": cal["reliability_uncalibrated"], "calibrated": cal["reliability"]}
    return report


def write_evaluation(report: dict[str, Any], run_dir: Path, extra: dict[str, Any] | None = None) -> dict[str, Path]:
    """Write ``metrics.json``, ``confusion_matrix.png``, ``reliability.png`` (when the report has
    calibration bins) and (when a training log exists) ``training_curves.png`` into ``run_dir``.
    Returns the paths written."""
    run_dir.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path] = {}
    history_path = run_dir / HISTORY_FILE
    history = []
    if history_path.exists():
        history = [json.loads(line) for line in history_path.read_text(encoding="utf-8").splitlines() if line.strip()]
    data = {**report, **(extra or {})}
    if history:
        data.setdefault("train_samples_per_sec", history[-1].get("train_samples_per_sec"))
        data.setdefault("epochs_trained", len(history))
        out["training_curves"] = plot_training_curves(history, run_dir / "training_curves.png")
    out["confusion_matrix"] = plot_confusion_matrix(report["confusion_matrix"], report["labels"], run_dir / "confusion_matrix.png")
    if "reliability" in report:
        out["reliability"] = plot_reliability(report["reliability"], run_dir / "reliability.png", report.get("temperature", 1.0))
    atomic_write_text(run_dir / METRICS_FILE, json.dumps(data, indent=2))
    out["metrics"] = run_dir / METRICS_FILE
    return out
