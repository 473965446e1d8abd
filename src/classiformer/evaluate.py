"""Evaluation: metrics on a labelled set, written with plots into the run folder."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from .calibration import calibration_report, multilabel_calibration_report
from .checkpoint import MULTI_LABEL, atomic_write_text
from .data.datasets import DataError, TextDataset, check_labels_known, encode_labels
from .evaluate_multilabel import multilabel_evaluation, write_multilabel_plots
from .inference import sigmoid, softmax
from .metrics import classification_report
from .plots import plot_confusion_matrix, plot_reliability, plot_training_curves
from .predict import Classifier
from .training import read_history

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.json"
# A multi-label report carries its targets and scores (numpy arrays) for the plots; they are not
# metrics and stay out of metrics.json.
ARRAY_KEYS = ("targets", "scores")


def evaluate(clf: Classifier, dataset: TextDataset, progress: bool = True, shared: bool = False) -> dict[str, Any]:
    """Accuracy, macro-F1, per-class precision/recall/F1 and confusion matrix on ``dataset``,
    the evaluation throughput in documents per second, and calibration: negative log-likelihood
    and expected calibration error before (``*_uncalibrated``) and after temperature scaling with
    the checkpoint's stored ``temperature``, with the reliability-diagram bins of both.

    A multi-label model gets :func:`evaluate_multilabel`'s report instead. With ``shared``, the
    ranks of a process group (each calling it) compute the logits in shares (``Classifier.logits``)
    and each gets the report one process would."""
    if clf.multi_label:
        return evaluate_multilabel(clf, dataset, progress, shared)
    if dataset.label_sets is not None:
        raise DataError(f"{dataset.source}: has label lists (multi-label data), but this model picks one class per "
                        "text; train a multi-label model on it")
    if dataset.labels is None:
        raise DataError(f"{dataset.source}: evaluation needs labelled data")
    check_labels_known(dataset, clf.labels)
    index = {lbl: i for i, lbl in enumerate(clf.labels)}
    t0 = time.perf_counter()
    logits = clf.logits(dataset.texts, progress=progress, shared=shared)
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


def evaluate_multilabel(clf: Classifier, dataset: TextDataset, progress: bool = True, shared: bool = False
                        ) -> dict[str, Any]:
    """A multi-label model on ``dataset`` (label lists; single-label data counts as one-label
    sets): ``metrics.multilabel_report`` at the checkpoint's decision thresholds (tuned on
    validation, or ``--threshold``) on its calibrated probabilities, the same at a fixed 0.5 under
    ``"at_0.5"``, per-label calibration (mean and micro ECE, NLL before and after the stored
    temperatures), throughput, and the ``targets`` (N, L) and ``scores`` (N, L) the plots need."""
    data = dataset.as_multi_label()
    if data.label_sets is None:
        raise DataError(f"{dataset.source}: evaluation needs labelled data")
    targets = encode_labels(data, clf.labels)  # (N, L), columns in the model's label order
    temperatures = clf.label_temperatures
    t0 = time.perf_counter()
    logits = clf.logits(data.texts, progress=progress, shared=shared)
    scores = sigmoid(logits, temperatures)  # what clf.predict_proba returns
    seconds = time.perf_counter() - t0
    report = multilabel_evaluation(targets, scores, clf.labels, np.asarray(clf.thresholds.per_label))
    report["thresholds_tuned"] = int(sum(clf.thresholds.tuned))
    report["threshold_rule"] = clf.thresholds.rule
    report["eval_docs_per_sec"] = len(data) / max(seconds, 1e-9)
    report["source"] = dataset.source
    cal = multilabel_calibration_report(logits, targets, temperatures)
    for key in ("nll", "nll_uncalibrated", "ece", "ece_uncalibrated", "micro_ece", "micro_ece_uncalibrated"):
        report[key] = cal[key]
    report["targets"], report["scores"] = targets, scores
    return report


def write_evaluation(report: dict[str, Any], run_dir: Path, extra: dict[str, Any] | None = None) -> dict[str, Path]:
    """Write ``metrics.json``, ``confusion_matrix.png``, ``reliability.png`` (when the report has
    calibration bins) and (when a training log exists) ``training_curves.png`` into ``run_dir``;
    for a multi-label report, ``per_label_f1.png``, ``precision_recall.png`` and
    ``label_cooccurrence.png`` instead of the confusion matrix. Returns the paths written."""
    run_dir.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path] = {}
    history = read_history(run_dir)
    data = {k: v for k, v in {**report, **(extra or {})}.items() if k not in ARRAY_KEYS}
    if history:
        data.setdefault("train_samples_per_sec", history[-1].get("train_samples_per_sec"))
        data.setdefault("epochs_trained", len(history))
        out["training_curves"] = plot_training_curves(history, run_dir / "training_curves.png")
    if report.get("problem_type") == MULTI_LABEL:
        if "scores" not in report or "targets" not in report:
            raise ValueError("a multi-label report needs its 'targets' and 'scores' (from evaluate) for the plots")
        out.update(write_multilabel_plots(report, report["targets"], report["scores"], run_dir))
    else:
        out["confusion_matrix"] = plot_confusion_matrix(report["confusion_matrix"], report["labels"],
                                                        run_dir / "confusion_matrix.png")
    if "reliability" in report:
        out["reliability"] = plot_reliability(report["reliability"], run_dir / "reliability.png", report.get("temperature", 1.0))
    atomic_write_text(run_dir / METRICS_FILE, json.dumps(data, indent=2))
    out["metrics"] = run_dir / METRICS_FILE
    return out
