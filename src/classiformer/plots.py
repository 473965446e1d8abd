"""Figures for people: confusion matrix, training curves, reliability diagram and attention
heatmaps (PNG, matplotlib's Agg backend)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402


def _short(label: str, limit: int = 28) -> str:
    return label if len(label) <= limit else label[: limit - 1] + "\u2026"


def confusion_matrix_figure(cm: list[list[int]], labels: list[str], title: str = "Confusion matrix") -> Figure:
    """The row-normalised confusion matrix as a figure whose cells, fonts and size follow the
    class count: 4 classes get large annotated cells, 90 classes small cells with smaller tick
    labels that never overlap (one tick label per cell, each no taller than the cell), and the
    figure stays a few thousand pixels wide at most."""
    m = np.asarray(cm, dtype=float)
    n = len(labels)
    rows = m.sum(1, keepdims=True)
    norm = np.divide(m, rows, out=np.zeros_like(m), where=rows > 0)
    cell = min(0.6, max(0.16, 12.0 / max(n, 1)))  # inches per class: 0.6 up to 20 classes, 0.16 at 75+
    font = min(10.0, max(5.0, cell * 72 * 0.6))  # points; a tick label is at most 60% of a cell tall
    names = [_short(lbl) for lbl in labels]
    # Room for the longest tick label (about 0.6 em per character) on the left and at the bottom.
    margin = 0.8 + max(len(x) for x in names) * font * 0.6 / 72
    side = n * cell
    fig, ax = plt.subplots(figsize=(side + margin + 1.6, side + margin + 0.8))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    # Few classes: 45-degree labels read best; many: vertical ones, one cell wide each.
    if n <= 10:
        ax.set_xticks(range(n), names, rotation=45, ha="right", rotation_mode="anchor", fontsize=font)
    else:
        ax.set_xticks(range(n), names, rotation=90, fontsize=font)
    ax.set_yticks(range(n), names, fontsize=font)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    if n <= 30:  # counts and shares fit inside a cell down to ~0.4 inches
        size = min(8.0, cell * 72 / 3.2)
        for i in range(n):
            for j in range(n):
                ax.text(j, i, f"{int(m[i, j])}\n{norm[i, j]:.0%}", ha="center", va="center", fontsize=size,
                        color="white" if norm[i, j] > 0.5 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="share of the true class")
    fig.tight_layout()
    return fig


def plot_confusion_matrix(cm: list[list[int]], labels: list[str], path: Path, title: str = "Confusion matrix") -> Path:
    fig = confusion_matrix_figure(cm, labels, title)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_training_curves(history: list[dict[str, Any]], path: Path) -> Path:
    epochs = [h["epoch"] for h in history]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax1.plot(epochs, [h["train_loss"] for h in history], "o-", label="train")
    ax1.plot(epochs, [h["val_loss"] for h in history], "o-", label="validation")
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("loss")
    ax1.set_title("Loss")
    ax1.legend()
    ax2.plot(epochs, [h["val_accuracy"] for h in history], "o-", label="validation accuracy")
    ax2.plot(epochs, [h["val_macro_f1"] for h in history], "s--", label="validation macro-F1")
    ax2.set_xlabel("epoch")
    ax2.set_title("Validation")
    ax2.legend()
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_reliability(bins: dict[str, dict[str, Any]], path: Path, temperature: float = 1.0) -> Path:
    """Reliability diagram (Guo et al., 2017): accuracy against confidence per bin, before and
    after temperature scaling; bars on the diagonal mean calibrated probabilities."""
    fig, axes = plt.subplots(1, len(bins), figsize=(4.5 * len(bins), 4.2), squeeze=False)
    for ax, (name, b) in zip(axes[0], bins.items()):
        edges = np.asarray(b["edges"])
        width = np.diff(edges)
        acc = np.asarray(b["accuracy"])
        conf = np.asarray(b["confidence"])
        count = np.asarray(b["count"])
        has = count > 0
        ax.bar(edges[:-1][has], acc[has], width=width[has], align="edge", color="tab:blue", edgecolor="black",
               alpha=0.8, label="accuracy")
        ax.bar(edges[:-1][has], (conf - acc)[has], bottom=acc[has], width=width[has], align="edge",
               color="tab:red", alpha=0.3, hatch="//", label="gap to confidence")
        ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect calibration")
        t = temperature if name == "calibrated" else 1.0
        ece = b.get("ece")
        ax.set_title(f"{name} (T = {t:.2f})" + (f", ECE {ece:.3f}" if ece is not None else ""))
        ax.set_xlabel("confidence (top-class probability)")
        ax.set_ylabel("accuracy")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


ATTENTION_CMAP = "Blues"  # white at 0: weak or spread-out attention stays pale
ATTENTION_SCALE = "attention weight (fixed scale 0\u20131)"


def attention_figure(
    weights: np.ndarray,
    tokens: list[str],
    title: str = "",
    max_tokens: int = 60,
    columns: int = 4,
    mean_first: bool = True,
    panel_titles: list[str] | None = None,
) -> Figure:
    """Heatmaps of attention weights with the tokens on both axes, like the alignment figures of
    Bahdanau et al. (2015). ``weights`` is (H, T, T) (rows = queries, each row sums to 1) or (1, T)
    for attention pooling. Several heads are laid out in a grid of ``columns``, led by their mean
    (``mean_first``). Every panel uses the same fixed 0-1 colour scale, shown by one colour bar, so a
    near-uniform map looks pale rather than as strong as a peaked one (a map scaled to its own peak
    would show uniform attention at full colour). Tick labels are left off beyond ``max_tokens``
    tokens, or where the cells are too small to read them."""
    w = np.asarray(weights, dtype=float)
    if w.ndim == 1:
        w = w[None]
    if w.ndim == 2:
        w = w[None]  # (1, rows, T)
    heads, rows, cols = w.shape
    square = rows == cols and rows > 1
    if heads > 1 and mean_first:
        panels = np.concatenate([w.mean(0, keepdims=True), w])  # (1 + H, rows, T)
        names = [f"mean of {heads} heads", *(f"head {h + 1}" for h in range(heads))]
    else:
        panels = w
        names = [f"head {h + 1}" for h in range(heads)] if heads > 1 else [""]
    if panel_titles is not None:
        names = list(panel_titles)
    n = len(panels)
    ncols = min(max(1, columns), n)
    nrows = -(-n // ncols)
    if square:  # the side of one panel, in inches: smaller in a grid, never so small it is unreadable
        side = float(np.clip(0.2 * cols, 2.8, 6.0)) if n == 1 else float(np.clip(0.15 * cols, 2.6, 4.5))
        width, height = side, side
    else:
        width, height = float(np.clip(0.25 * cols, 4.0, 14.0)), 0.9 + 0.3 * rows
    font = min(8.0, width / cols * 72 * 0.75)  # points that fit in one cell
    labelled = cols <= max_tokens and font >= 4.5
    margin = 0.9 if labelled else 0.4  # inches for the tick labels of one panel
    fig, axes = plt.subplots(
        nrows, ncols, figsize=((width + margin) * ncols + 1.2, (height + margin) * nrows + 0.5),
        squeeze=False, layout="constrained",
    )
    im = None
    for k, ax in enumerate(axes.ravel()):
        if k >= n:
            ax.set_axis_off()
            continue
        im = ax.imshow(panels[k], cmap=ATTENTION_CMAP, vmin=0.0, vmax=1.0, aspect="auto", interpolation="nearest")
        if labelled:
            ax.set_xticks(range(cols), tokens[:cols], rotation=90, fontsize=font)
            ax.set_yticks(range(rows), tokens[:rows] if square else [""] * rows, fontsize=font)
        else:
            ax.set_xticks([])
            ax.set_yticks([])
        if k // ncols == nrows - 1 or k + ncols >= n:
            ax.set_xlabel("attended to (key)", fontsize=8)
        if square and k % ncols == 0:
            ax.set_ylabel("attending (query)", fontsize=8)
        if names[k]:
            ax.set_title(names[k], fontsize=9, fontweight="bold" if names[k].startswith("mean") else "normal")
    assert im is not None
    bar = fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.9 if square else 1.0, aspect=30 if square else 8)
    bar.set_label(ATTENTION_SCALE, fontsize=8)
    bar.set_ticks([0.0, 0.25, 0.5, 0.75, 1.0])
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def plot_attention(
    weights: np.ndarray,
    tokens: list[str],
    path: Path | None = None,
    title: str = "",
    max_tokens: int = 60,
    columns: int = 4,
    mean_first: bool = True,
    panel_titles: list[str] | None = None,
) -> Path | bytes:
    """:func:`attention_figure` as a PNG: writes ``path``, or returns the PNG bytes when ``path``
    is None."""
    import io

    fig = attention_figure(weights, tokens, title, max_tokens, columns, mean_first, panel_titles)
    try:
        if path is None:
            buf = io.BytesIO()
            fig.savefig(buf, format="png", dpi=100)
            return buf.getvalue()
        fig.savefig(path, dpi=100)
        return path
    finally:
        plt.close(fig)
