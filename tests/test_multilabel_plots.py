"""Multi-label evaluation figures: written, sized for 5 and 90 labels, honest about what they
leave out, computed right (PR curve vs scikit-learn, co-occurrence counts) and loud on bad input."""

from __future__ import annotations

import struct
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest

from classiformer import metrics, plots
from classiformer.evaluate_multilabel import PLOT_FILES, multilabel_evaluation, write_multilabel_plots
from classiformer.thresholds import tune_thresholds


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def synthetic(n_labels: int, n: int = 600, seed: int = 0) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Zipf-like label frequencies (a few common labels, many rare ones, like Reuters) and
    scores that rank positives higher, with noise."""
    rng = np.random.default_rng(seed)
    freq = 0.5 / (1 + np.arange(n_labels)) ** 1.1
    y = (rng.random((n, n_labels)) < freq).astype(np.int64)
    y[0] = 1  # every label occurs at least once
    scores = np.clip(0.6 * y + rng.normal(0.2, 0.2, y.shape), 0.0, 1.0)
    labels = [f"topic-{i}" if i % 9 else f"a-long-category-name-{i}" for i in range(n_labels)]
    return y, scores, labels


@pytest.mark.parametrize("n_labels", [5, 90])
def test_write_multilabel_plots_writes_readable_pngs(tmp_path: Path, n_labels: int) -> None:
    y, s, labels = synthetic(n_labels)
    th = tune_thresholds(y, s).per_label
    report = multilabel_evaluation(y, s, labels, th)
    paths = write_multilabel_plots(report, y, s, tmp_path)
    assert {p.name for p in paths.values()} == set(PLOT_FILES.values())
    for name, path in paths.items():
        width, height = png_size(path)
        # Readable (not a thumbnail) but not a poster: a few thousand pixels at most.
        assert 500 <= width <= 3000 and 300 <= height <= 3000, (name, width, height)
        assert path.stat().st_size > 10_000, name
    # One bar per label: 90 labels make a figure several times taller than 5 do.
    _, h = png_size(paths["per_label_f1"])
    assert (h > 1500) == (n_labels == 90)


def test_report_compares_tuned_thresholds_with_fixed_half() -> None:
    y, s, labels = synthetic(5)
    report = multilabel_evaluation(y, s, labels, [0.3] * 5)
    assert [report["per_label"][lb]["threshold"] for lb in labels] == [0.3] * 5
    half = multilabel_evaluation(y, s, labels, 0.5)
    assert report["at_0.5"]["macro_f1"] == pytest.approx(half["macro_f1"])
    assert report["at_0.5"]["micro_f1"] != pytest.approx(report["micro_f1"])


def test_per_label_f1_keeps_the_most_frequent_and_says_how_many_it_left_out() -> None:
    y, s, labels = synthetic(90)
    report = multilabel_evaluation(y, s, labels)
    fig = plots.per_label_f1_figure(report["per_label"], top=20)
    ax = fig.axes[0]
    shown = [t.get_text() for t in ax.get_yticklabels()]
    support = {lb: m["support"] for lb, m in report["per_label"].items()}
    frequent = sorted(labels, key=lambda lb: (-support[lb], lb))[:20]
    assert sorted(shown) == sorted(plots._short(lb) for lb in frequent)
    f1 = [report["per_label"][lb]["f1"] for lb in frequent]
    assert [p.get_width() for p in ax.patches] == pytest.approx(sorted(f1, reverse=True))  # best first
    assert "20 most frequent of 90 labels; 70 rarer ones" in ax.get_title()
    plt.close(fig)


def test_precision_recall_curve_matches_sklearn() -> None:
    skm = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(3)
    y = rng.random(400) < 0.2
    s = np.round(rng.random(400) * 0.5 + 0.4 * y, 2)  # rounded: ties, as real scores have
    p, r, t, ap = metrics.precision_recall_curve(y, s)
    ref_p, ref_r, ref_t = skm.precision_recall_curve(y, s)
    # scikit-learn lists thresholds ascending and appends the (P=1, R=0) end point.
    np.testing.assert_allclose(p, ref_p[:-1][::-1])
    np.testing.assert_allclose(r, ref_r[:-1][::-1])
    np.testing.assert_allclose(t, ref_t[::-1])
    assert ap == pytest.approx(skm.average_precision_score(y, s))


def test_precision_recall_marks_each_operating_point() -> None:
    y, s, labels = synthetic(5)
    th = np.full(5, 0.35)
    fig = plots.precision_recall_figure(y, s, labels, th, top=2)
    ax = fig.axes[0]
    # Dots: micro + 2 labels, each at 0.5 and at its tuned threshold, plus 2 legend-only markers.
    dots = [ln for ln in ax.get_lines() if ln.get_marker() == "o" and len(ln.get_xdata())]
    assert len(dots) == 6
    pred = s[:, 0] >= 0.35
    recall = (pred & (y[:, 0] == 1)).sum() / y[:, 0].sum()
    assert any(d.get_xdata()[0] == pytest.approx(recall) for d in dots)
    plt.close(fig)


def test_cooccurrence_counts_pairs_of_the_top_labels() -> None:
    y = np.array([[1, 1, 0, 0], [1, 1, 1, 0], [1, 0, 0, 0], [0, 0, 1, 0], [1, 0, 1, 0]])
    labels = ["a", "b", "c", "never"]
    fig = plots.cooccurrence_figure(y, labels, top=3)
    ax = fig.axes[0]
    counts = ax.images[0].get_array()
    # Order by frequency: a (4), c (3), b (2); the never-used label is left out.
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "c", "b"]
    np.testing.assert_array_equal(counts.filled(0), [[4, 2, 2], [2, 3, 1], [2, 1, 2]])
    assert "3 of 5 examples have several labels" in ax.get_title()
    plt.close(fig)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda y, s, lb: plots.precision_recall_figure(y, s[:, :4], lb), r"scores has shape \(600, 4\)"),
        (lambda y, s, lb: plots.precision_recall_figure(y[:-1], s, lb), r"must be the same"),
        (lambda y, s, lb: plots.precision_recall_figure(y, s, lb, [0.5] * 4), r"4 thresholds for 5 labels"),
        (lambda y, s, lb: plots.precision_recall_figure(y, s, lb[:4]), r"y_true has shape \(600, 5\)"),
        (lambda y, s, lb: plots.cooccurrence_figure(y * 2, lb), r"0/1 label indicators"),
        (lambda y, s, lb: plots.cooccurrence_figure(y[:, 0], lb), r"expected \(examples, 5\)"),
        (lambda y, s, lb: plots.cooccurrence_figure(np.zeros_like(y), lb), r"no label occurs"),
        (lambda y, s, lb: plots.per_label_f1_figure({}), r"no labels"),
        (lambda y, s, lb: plots.per_label_f1_figure({"a": {"f1": 0.5}}), r"per_label\['a'\] needs 'f1' and 'support'"),
        (lambda y, s, lb: write_multilabel_plots(multilabel_evaluation(y, s, lb), y[:-1], s[:-1], Path("unused")),
         r"do not match the report's \(600 examples, 5 labels\)"),
    ],
)
def test_bad_input_fails_with_the_shapes(call, message: str) -> None:
    y, s, labels = synthetic(5)
    with pytest.raises(ValueError, match=message):
        call(y, s, labels)
    plt.close("all")
