"""Evaluation: metrics on a labelled set, written with plots into the run folder."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from .checkpoint import atomic_write_text
from .data.datasets import TextDataset, check_labels_known
from .metrics import classification_report
from .plots import plot_confusion_matrix, plot_training_curves
from .predict import Classifier
from .training import HISTORY_FILE

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.json"


def evaluate(clf: Classifier, dataset: TextDataset, progress: bool = True) -> dict[str, Any]:
    """Accuracy, macro-F1, per-class precision/recall/F1 and confusion matrix on ``dataset``,
    plus the evaluation throughput in documents per second."""
    check_labels_known(dataset, clf.labels)
    assert dataset.labels is not None
    index = {lbl: i for i, lbl in enumerate(clf.labels)}
    t0 = time.perf_counter()
    proba = clf.predict_proba(dataset.texts, progress=progress)
    seconds = time.perf_counter() - t0
    y_true = [index[lbl] for lbl in dataset.labels]
    report = classification_report(y_true, proba.argmax(1), clf.labels)  # type: ignore[arg-type]
    report["eval_docs_per_sec"] = len(dataset) / max(seconds, 1e-9)
    report["source"] = dataset.source
    return report


def write_evaluation(report: dict[str, Any], run_dir: Path, extra: dict[str, Any] | None = None) -> dict[str, Path]:
    """Write ``metrics.json``, ``confusion_matrix.png`` and (when a training log exists)
    ``training_curves.png`` into ``run_dir``. Returns the paths written."""
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
    atomic_write_text(run_dir / METRICS_FILE, json.dumps(data, indent=2))
    out["metrics"] = run_dir / METRICS_FILE
    return out
