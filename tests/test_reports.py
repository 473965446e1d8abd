"""Reports for people: the terminal metrics table and the confusion-matrix figure, for 4 classes and
for many (20-90), where a full matrix no longer fits a terminal or a readable picture."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from classiformer.metrics import classification_report, format_report, most_confused
from classiformer.plots import confusion_matrix_figure, plot_confusion_matrix

NEWSGROUPS = [
    "alt.atheism", "comp.graphics", "comp.os.ms-windows.misc", "comp.sys.ibm.pc.hardware", "comp.sys.mac.hardware",
    "comp.windows.x", "misc.forsale", "rec.autos", "rec.motorcycles", "rec.sport.baseball", "rec.sport.hockey",
    "sci.crypt", "sci.electronics", "sci.med", "sci.space", "soc.religion.christian", "talk.politics.guns",
    "talk.politics.mideast", "talk.politics.misc", "talk.religion.misc",
]


def labels_for(n: int) -> list[str]:
    return [f"{NEWSGROUPS[i % 20]}-{i}" if n > 20 else NEWSGROUPS[i] for i in range(n)]


def report_for(n: int, seed: int = 0) -> dict:
    """A report over ``n`` classes: mostly right, with a few planted confusions of known size."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(n), 50)
    pred = y.copy()
    wrong = rng.random(len(y)) < 0.05
    pred[wrong] = rng.integers(0, n, wrong.sum())
    # Planted: 30 of class 1 predicted as 2, 20 of class 3 as 0 (far above the random noise).
    pred[np.flatnonzero(y == 1)[:30]] = 2
    pred[np.flatnonzero(y == 3)[:20]] = 0
    return classification_report(y, pred, labels_for(n))


def test_few_classes_print_the_matrix() -> None:
    report = classification_report(np.array([0, 1, 2, 3, 3]), np.array([0, 1, 2, 3, 0]), ["World", "Sports", "Business", "Sci/Tech"])
    text = format_report(report, width=80)
    assert "confusion matrix (rows: true, columns: predicted)" in text
    assert "most confused" not in text
    assert max(len(line) for line in text.splitlines()) <= 80


@pytest.mark.parametrize("n", [20, 90])
def test_many_classes_print_the_most_confused_pairs(n: int) -> None:
    report = report_for(n)
    text = format_report(report, width=120, matrix_path="runs/x/confusion_matrix.png")
    lines = text.splitlines()
    assert "confusion matrix (rows" not in text
    assert max(len(line) for line in lines) <= 120, max(lines, key=len)
    names = labels_for(n)
    start = lines.index(f"most confused pairs (true -> predicted, of {n} classes)")
    pairs = lines[start + 1 : start + 11]
    assert len(pairs) == 10 and pairs[0].split() == [names[1], "->", names[2], "30", "(60.0%", "of", f"{names[1]})"]
    assert pairs[1].split()[:4] == [names[3], "->", names[0], "20"]
    assert f"the full {n}x{n} confusion matrix is drawn in runs/x/confusion_matrix.png" in text
    counts = [int(p.split()[3]) for p in pairs]
    assert counts == sorted(counts, reverse=True)


def test_a_matrix_wider_than_the_terminal_is_not_printed() -> None:
    labels = [f"a rather long class name {i}" for i in range(6)]
    report = classification_report(np.arange(6), np.arange(6), labels)
    assert "confusion matrix (rows" in format_report(report, width=200)
    narrow = format_report(report, width=100)
    assert "confusion matrix (rows" not in narrow and "none: every example is predicted as its true class" in narrow


def test_most_confused_leaves_out_the_diagonal_and_empty_cells() -> None:
    report = classification_report(np.array([0, 0, 1, 2]), np.array([0, 1, 1, 2]), ["a", "b", "c"])
    assert most_confused(report) == [("a", "b", 1)]


def _no_overlap(boxes: list, axis: int) -> bool:
    """Consecutive boxes along ``axis`` (0: x, 1: y) do not overlap."""
    spans = sorted((b.x0, b.x1) if axis == 0 else (b.y0, b.y1) for b in boxes)
    return all(prev[1] <= nxt[0] + 0.5 for prev, nxt in zip(spans, spans[1:]))


@pytest.mark.parametrize("n", [4, 20, 40, 90])
def test_confusion_matrix_tick_labels_never_overlap(n: int) -> None:
    report = report_for(n)
    fig = confusion_matrix_figure(report["confusion_matrix"], report["labels"])
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    ax = fig.axes[0]
    fig_box = fig.bbox
    for axis, ticks in ((0, ax.get_xticklabels()), (1, ax.get_yticklabels())):
        assert len(ticks) == n
        boxes = [t.get_window_extent(renderer) for t in ticks]
        if axis == 0 and n <= 10:
            continue  # 45-degree labels: their upright boxes overlap although the text does not
        assert _no_overlap(boxes, axis), f"{n} classes: overlapping {'x' if axis == 0 else 'y'} tick labels"
        assert all(t.get_fontsize() >= 5 for t in ticks)
        # Every label lies inside the picture (none cut off at the edges).
        assert all(b.x0 >= 0 and b.y0 >= 0 and b.x1 <= fig_box.x1 and b.y1 <= fig_box.y1 for b in boxes)
    import matplotlib.pyplot as plt

    plt.close(fig)


@pytest.mark.parametrize("n", [4, 40, 90])
def test_confusion_matrix_png_stays_a_readable_size(n: int, tmp_path: Path) -> None:
    report = report_for(n)
    path = plot_confusion_matrix(report["confusion_matrix"], report["labels"], tmp_path / "cm.png")
    w, h = Image.open(path).size
    # Small enough to open on a screen (the old figure grew 0.6 inches per class: 6,900 px at 90
    # classes, with 10-point labels lost in it), large enough for 4 classes to be read at once.
    assert 500 <= w <= 2400 and 400 <= h <= 2400, (w, h)
