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

from .metrics import precision_recall_curve  # noqa: E402


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
    # A multi-label run records micro-F1 (at thresholds tuned on the split) where others record accuracy.
    first = "val_accuracy" if "val_accuracy" in history[0] else "val_micro_f1"
    name = "accuracy" if first == "val_accuracy" else "micro-F1"
    ax2.plot(epochs, [h[first] for h in history], "o-", label=f"validation {name}")
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
            if square:
                ax.set_yticks(range(rows), tokens[:rows], fontsize=font)
            else:
                ax.set_yticks([])
        else:
            ax.set_xticks([])
            ax.set_yticks([])
        if k // ncols == nrows - 1 or k + ncols >= n:
            ax.set_xlabel("attended to (key)" if square else "token", fontsize=8)
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


# Multi-label evaluation figures (issue 13). Reuters-21578 has 90 labels, most of them rare, so
# each figure scales its fonts with the label count or shows the most frequent labels only, and
# says what it left out.


def _label_matrix(y: np.ndarray, labels: list[str], name: str) -> np.ndarray:
    """``y`` as an (N, L) array with one column per label, or a ValueError naming the mismatch."""
    a = np.asarray(y)
    if a.ndim != 2 or a.shape[1] != len(labels):
        raise ValueError(f"{name} has shape {a.shape}; expected (examples, {len(labels)}) for {len(labels)} labels")
    return a


def _indicator(y_true: np.ndarray, labels: list[str]) -> np.ndarray:
    t = _label_matrix(y_true, labels, "y_true")
    if t.size and not np.isin(t, (0, 1)).all():
        raise ValueError("y_true must hold 0/1 label indicators")
    return t.astype(bool)


def per_label_f1_figure(
    per_label: dict[str, dict[str, Any]], top: int = 100, title: str = "Per-label F1",
    micro_f1: float | None = None, macro_f1: float | None = None,
) -> Figure:
    """Horizontal F1 bars, one per label, best first (``per_label`` as in
    ``metrics.multilabel_report``: label -> support, f1, ...). Each bar is annotated with the
    label's test support, since an F1 of 0 on one example means something else than on a hundred.
    Up to ``top`` labels are drawn (the most frequent ones, then sorted by F1); a note names how
    many were left out. Dashed lines mark the micro- and macro-F1 when given."""
    if not per_label:
        raise ValueError("no labels to plot")
    for name, m in per_label.items():
        if "f1" not in m or "support" not in m:
            raise ValueError(f"per_label[{name!r}] needs 'f1' and 'support', has {sorted(m)}")
    if top < 1:
        raise ValueError(f"top must be at least 1, got {top}")
    kept = sorted(per_label, key=lambda lb: (-per_label[lb]["support"], lb))[:top]
    kept.sort(key=lambda lb: (-per_label[lb]["f1"], -per_label[lb]["support"], lb))
    n = len(kept)
    bar = min(0.4, max(0.17, 8.0 / n))  # inches per label: 0.4 up to 20 labels, 0.17 from 47 on
    font = min(10.0, max(6.0, bar * 72 * 0.6))  # a tick label is at most 60% of a bar's slot tall
    names = [_short(lb) for lb in kept]
    margin = 0.4 + max(len(x) for x in names) * font * 0.6 / 72
    fig, ax = plt.subplots(figsize=(6.5 + margin, n * bar + 1.4))
    f1 = np.array([per_label[lb]["f1"] for lb in kept], dtype=float)
    y = np.arange(n)
    ax.barh(y, f1, color=plt.get_cmap("viridis")(0.15 + 0.7 * f1), edgecolor="none")
    ax.set_yticks(y, names, fontsize=font)
    ax.set_ylim(n - 0.5, -0.5)  # best label on top, no empty rows above or below
    for i, lb in enumerate(kept):
        ax.text(min(f1[i], 1.0) + 0.01, i, f"{f1[i]:.2f}  n={per_label[lb]['support']}", va="center",
                fontsize=font * 0.85)
    ax.set_xlim(0, 1.25)  # room for the annotations right of a perfect bar
    ax.set_xticks(np.linspace(0, 1, 6))
    ax.set_xlabel("F1 (test support as n)")
    for value, name, style in ((micro_f1, "micro", "--"), (macro_f1, "macro", ":")):
        if value is not None:
            ax.axvline(value, color="black", ls=style, lw=1, label=f"{name}-F1 {value:.3f}")
    if micro_f1 is not None or macro_f1 is not None:
        ax.legend(loc="lower right", fontsize=8)
    left_out = len(per_label) - n
    ax.set_title(title + (f" ({n} most frequent of {len(per_label)} labels; {left_out} rarer ones in metrics.json)"
                          if left_out else f" ({n} labels)"), fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig


def plot_per_label_f1(per_label: dict[str, dict[str, Any]], path: Path, top: int = 100, title: str = "Per-label F1",
                      micro_f1: float | None = None, macro_f1: float | None = None) -> Path:
    fig = per_label_f1_figure(per_label, top, title, micro_f1, macro_f1)
    fig.savefig(path, dpi=120, bbox_inches="tight")  # long label names stay inside the image
    plt.close(fig)
    return path


def _operating_point(y: np.ndarray, s: np.ndarray, threshold: np.ndarray | float) -> tuple[float, float]:
    pred = s >= threshold
    tp = float((pred & y).sum())
    return (tp / pred.sum() if pred.sum() else 1.0), (tp / y.sum() if y.sum() else 0.0)


def precision_recall_figure(
    y_true: np.ndarray, scores: np.ndarray, labels: list[str], thresholds: np.ndarray | list[float] | None = None,
    top: int = 6, title: str = "Precision-recall",
) -> Figure:
    """Precision-recall curves of a multi-label model: micro-averaged over every (example, label)
    decision, and each of the ``top`` most frequent labels, with average precision in the legend.
    ``thresholds`` (one per label: the tuned ones) are marked where they operate on each curve
    (filled dots; the micro dot applies every label's own threshold), and the fixed 0.5 cut with
    open circles, so the figure shows what tuning moved."""
    t = _indicator(y_true, labels)
    s = _label_matrix(scores, labels, "scores").astype(np.float64)
    if s.shape != t.shape:
        raise ValueError(f"y_true {t.shape} and scores {s.shape} must be the same (examples, labels) shape")
    th = None
    if thresholds is not None:
        th = np.asarray(thresholds, dtype=np.float64).ravel()
        if th.shape != (len(labels),):
            raise ValueError(f"{th.size} thresholds for {len(labels)} labels")
    support = t.sum(0)
    frequent = [j for j in np.argsort(-support, kind="stable")[:top] if support[j] > 0]
    fig, ax = plt.subplots(figsize=(7.5, 6.2))
    colours = plt.get_cmap("tab10")
    curves: list[tuple[str, np.ndarray, np.ndarray, np.ndarray | float | None]] = []
    curves.append(("micro-average", t.ravel(), s.ravel(), None if th is None else np.broadcast_to(th, s.shape).ravel()))
    for j in frequent:
        curves.append((f"{_short(labels[j], 20)} (n={int(support[j])})", t[:, j], s[:, j], None if th is None else th[j]))
    for k, (name, y, sc, cut) in enumerate(curves):
        p, r, _, ap = precision_recall_curve(y, sc)
        colour = "black" if k == 0 else colours((k - 1) % 10)
        ax.step(r, p, where="post", color=colour, lw=2.2 if k == 0 else 1.2, label=f"{name}, AP {ap:.3f}")
        p5, r5 = _operating_point(y.astype(bool), sc, 0.5)
        ax.plot(r5, p5, "o", mfc="none", mec=colour, ms=8)
        if cut is not None:
            pt, rt = _operating_point(y.astype(bool), sc, cut)
            ax.plot(rt, pt, "o", color=colour, ms=6)
    # Legend entries for the markers alone.
    ax.plot([], [], "o", mfc="none", mec="grey", ms=8, label="threshold 0.5")
    if th is not None:
        ax.plot([], [], "o", color="grey", ms=6, label="tuned thresholds")
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    rest = len(labels) - len(frequent)
    ax.set_title(title + (f" (micro and the {len(frequent)} most frequent of {len(labels)} labels)" if rest else ""),
                 fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize=7.5)
    fig.tight_layout()
    return fig


def plot_precision_recall(y_true: np.ndarray, scores: np.ndarray, labels: list[str], path: Path,
                          thresholds: np.ndarray | list[float] | None = None, top: int = 6,
                          title: str = "Precision-recall") -> Path:
    fig = precision_recall_figure(y_true, scores, labels, thresholds, top, title)
    fig.savefig(path, dpi=120, bbox_inches="tight")  # long label names stay inside the image
    plt.close(fig)
    return path


def cooccurrence_figure(y_true: np.ndarray, labels: list[str], top: int = 30,
                        title: str = "Label co-occurrence") -> Figure:
    """How often two labels are given to the same example (true labels), for the ``top`` most
    frequent labels: the diagonal is each label's count. A log colour scale, since the counts of a
    skewed label set span orders of magnitude (Reuters: earn 2,877 documents, most pairs 0-10);
    pairs that never co-occur stay white. Counts are written in the cells up to 20 labels."""
    t = _indicator(y_true, labels)
    if top < 1:
        raise ValueError(f"top must be at least 1, got {top}")
    support = t.sum(0)
    keep = [j for j in np.argsort(-support, kind="stable")[:top] if support[j] > 0]
    if not keep:
        raise ValueError("no label occurs in y_true; nothing co-occurs")
    sub = t[:, keep].astype(np.int64)
    counts = sub.T @ sub  # (K, K): examples carrying both labels
    n = len(keep)
    names = [_short(labels[j]) for j in keep]
    cell = min(0.6, max(0.2, 12.0 / n))
    font = min(10.0, max(5.5, cell * 72 * 0.55))
    margin = 0.8 + max(len(x) for x in names) * font * 0.6 / 72
    side = n * cell
    fig, ax = plt.subplots(figsize=(side + margin + 1.8, side + margin + 0.9))
    from matplotlib.colors import LogNorm

    masked = np.ma.masked_equal(counts, 0)
    im = ax.imshow(masked, cmap="magma_r", norm=LogNorm(vmin=1, vmax=max(2, int(counts.max()))))
    if n <= 10:
        ax.set_xticks(range(n), names, rotation=45, ha="right", rotation_mode="anchor", fontsize=font)
    else:
        ax.set_xticks(range(n), names, rotation=90, fontsize=font)
    ax.set_yticks(range(n), names, fontsize=font)
    if n <= 20:
        size = min(8.0, cell * 72 / 3.0)
        vmax = np.log(max(2, counts.max()))
        for i in range(n):
            for j in range(n):
                if counts[i, j]:
                    dark = np.log(counts[i, j]) / vmax > 0.6
                    ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=size,
                            color="white" if dark else "black")
    multi = int((t.sum(1) > 1).sum())
    rest = len(labels) - n
    ax.set_title(f"{title}: {multi} of {len(t)} examples have several labels"
                 + (f"\n({n} most frequent of {len(labels)} labels)" if rest else ""), fontsize=10)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="examples with both labels (log scale)")
    fig.tight_layout()
    return fig


def plot_cooccurrence(y_true: np.ndarray, labels: list[str], path: Path, top: int = 30,
                      title: str = "Label co-occurrence") -> Path:
    fig = cooccurrence_figure(y_true, labels, top, title)
    fig.savefig(path, dpi=120, bbox_inches="tight")  # long label names stay inside the image
    plt.close(fig)
    return path
