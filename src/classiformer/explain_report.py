"""Explanations for people and programs: attention heatmaps (PNG), a self-contained HTML page
(the text highlighted by importance, the predicted label and class probabilities, the heatmaps
embedded as data URIs) and JSON.

What a person sees is meant to be read without knowing the code: heatmaps share one fixed 0-1
colour scale with a colour bar (a map scaled to its own peak makes uniform attention look as
strong as a peaked one); a layer's heads are summarised by their mean, the heads themselves one
click away in a grid; importance displays leave out the tokenizer's special tokens ([CLS], [SEP],
padding), on which rollout and attention pile up weight that says nothing about the text (Clark et
al., 2019, "What Does BERT Look At?"), unless asked to include them. The JSON keeps every token,
with a flag for the special ones."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

import numpy as np

from .checkpoint import atomic_write_text
from .explain import Explanation
from .plots import plot_attention

METHOD_NOTES = {
    "rollout": "attention rollout (Abnar & Zuidema, 2020): how much of the pooled output flows from each token",
    "gradient": "integrated gradients (Sundararajan et al., 2017): red supports the label explained, blue opposes it",
    "attention": "attention weights: the pooling layer's (RNN) or the last layer's, heads averaged",
    "ngram": "the n-gram branch's part of the explained label's logit, per word (its weight and half of each "
    "neighbouring pair's): red supports the label explained, blue opposes it",
}
SIGNED = ("gradient", "ngram")  # methods whose scores can be negative
POSITIVE_RGB, NEGATIVE_RGB = "214,39,40", "31,119,180"
TOP_K = 5


def attention_figures(expl: Explanation) -> dict[str, bytes]:
    """PNG bytes per figure name: ``layer{l}`` (a grid led by the mean over heads, then each head,
    tokens on both axes, fixed 0-1 scale) for self-attention models, ``attention`` (one row over the
    tokens) for attention pooling."""
    figures: dict[str, bytes] = {}
    if expl.attentions is not None:
        att = np.asarray(expl.attentions)  # (L, H, T, T)
        for layer in range(att.shape[0]):
            figures[f"layer{layer + 1}"] = plot_attention(  # type: ignore[assignment]
                att[layer], expl.tokens, None,
                title=f"layer {layer + 1}: attention, the mean over heads first, then each head (rows attend to columns)",
            )
    elif "attention" in expl.importance:
        w = np.asarray(expl.importance["attention"])[None]  # (1, T)
        figures["attention"] = plot_attention(  # type: ignore[assignment]
            w, expl.tokens, None, title="attention pooling over the tokens", panel_titles=[""]
        )
    return figures


def layer_means(expl: Explanation) -> list[bytes]:
    """One PNG per layer: the attention averaged over the layer's heads, on the fixed 0-1 scale."""
    if expl.attentions is None:
        return []
    att = np.asarray(expl.attentions)  # (L, H, T, T)
    heads = att.shape[1]
    return [
        plot_attention(  # type: ignore[misc]
            att[layer].mean(0, keepdims=True), expl.tokens, None,
            title=f"layer {layer + 1}", panel_titles=[f"mean of {heads} heads" if heads > 1 else "attention"],
        )
        for layer in range(att.shape[0])
    ]


FULL_AT = 4.0  # full colour at this many times an even share of the importance


def shades(scores: np.ndarray) -> np.ndarray:
    """Colour intensity (0-1) per score: the token's share of the total |score|, against an even
    share, full at ``FULL_AT`` times an even share. Scaling to the peak instead would paint an even
    spread (nothing stands out) as strongly as one decisive word."""
    a = np.abs(np.asarray(scores, dtype=float))
    total = float(a.sum())
    if total <= 0 or len(a) == 0:
        return np.zeros_like(a)
    return np.minimum(1.0, a / total * len(a) / FULL_AT)


def _legend(method: str, n: int) -> str:
    """A colour bar for the highlighting, saying what each intensity means."""
    if method in SIGNED:
        bar = f"linear-gradient(to right, rgb({NEGATIVE_RGB}), #fff, rgb({POSITIVE_RGB}))"
        ends = "<span>opposes the label</span><span>0</span><span>supports the label</span>"
    else:
        bar = f"linear-gradient(to right, #fff, rgb({POSITIVE_RGB}))"
        ends = "<span>0</span><span>even share</span><span></span><span></span><span>4&times; even share</span>"
    return (
        f'<div class="legend" data-method="{html.escape(method)}"><div class="ramp" style="background: {bar}"></div>'
        f'<div class="ends">{ends}</div><p class="note">colour: the token\'s share of the total |score| of the '
        f"{n} tokens shown; an even share (1/{n}) is light, {FULL_AT:g}&times; an even share or more is full colour. "
        "Hover a token for its score.</p></div>"
    )


def _importance(expl: Explanation, method: str, include_special: bool) -> str:
    scores = np.asarray(expl.importance[method], dtype=float)
    shown = expl.shown(include_special)
    alpha = shades(scores[shown])
    spans = " ".join(
        f'<span class="tok{" special" if expl.special and expl.special[i] else ""}" '
        f'style="background: rgba({POSITIVE_RGB if scores[i] >= 0 else NEGATIVE_RGB},{a:.3f})" '
        f'title="{scores[i]:.4g}">{html.escape(expl.tokens[i])}</span>'
        for i, a in zip(shown, alpha)
    )
    top = "".join(
        f"<li><b>{html.escape(tok)}</b> <span class=\"num\">{s:.3g}</span></li>"
        for tok, s in expl.top_tokens(method, TOP_K, include_special)
    )
    hidden = [i for i in range(len(expl.tokens)) if i not in set(shown)]
    left_out = ""
    if hidden:
        listed = ", ".join(f"{html.escape(expl.tokens[i])} ({scores[i]:.3g})" for i in hidden)
        left_out = f'<p class="note">Special tokens left out of this display: {listed}.</p>'
    return (
        f'<section class="method" data-method="{html.escape(method)}"><h3>{html.escape(method)}</h3>'
        f'<p class="note">{html.escape(METHOD_NOTES.get(method, ""))}</p>'
        f'<p class="text">{spans}</p>{_legend(method, len(shown))}'
        f'<p class="note">Top {TOP_K}:</p><ol class="top">{top}</ol>{left_out}</section>'
    )


def _img(png: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}">'


def _attention(expl: Explanation, figures: dict[str, bytes], means: list[bytes]) -> str:
    if expl.attentions is not None:
        heads = np.asarray(expl.attentions).shape[1]
        intro = (
            "<p class=\"note\">Row = the attending token (query), column = the token attended to. Colours "
            "use one fixed scale, 0 (white) to 1 (all of the row's attention on one token), the colour bar "
            "beside each map: a pale map is attention spread evenly. Special tokens stay in these maps, "
            "since each row's weights sum to 1 over all tokens, and models park attention on them.</p>"
        )
        parts = []
        for layer, mean in enumerate(means, 1):
            grid = figures.get(f"layer{layer}")
            more = (
                f"<details><summary>each of the {heads} heads of layer {layer}</summary>"
                f"{_img(grid, f'layer {layer}, every head')}</details>"
                if grid is not None and heads > 1 else ""
            )
            parts.append(f'<div class="layer"><h3>Layer {layer}</h3>{_img(mean, f"layer {layer}, mean over heads")}{more}</div>')
        return intro + "".join(parts)
    if figures:
        return (
            "<p class=\"note\">Attention pooling weights (they sum to 1 over the tokens), on the fixed 0–1 scale of "
            "the colour bar.</p>" + "".join(_img(png, name) for name, png in figures.items())
        )
    return "<p>This model has no attention weights to show.</p>"


def headline(expl: Explanation) -> tuple[str, str, str]:
    """The page's heading, its title and (HTML) a line naming the model's prediction when the
    heading does not: a single-label model's own prediction reads "Predicted: X"; any other label
    explained says which, and whether the model predicts it."""
    p = expl.probabilities[expl.label]
    if not expl.multi_label and expl.predicted in ([], [expl.label]):
        return f"Predicted: {expl.label} ({p:.1%})", expl.label, ""
    if expl.multi_label:
        status = "predicted" if expl.is_predicted else "not predicted"
        heading = f"Label explained: {expl.label} ({p:.1%}, {status})"
        chosen = ", ".join(expl.predicted) if expl.predicted else "no label reaches its threshold"
        line = f"The model's labels for this text: {chosen}."
    else:
        heading = f"Class explained: {expl.label} ({p:.1%}, not the prediction)"
        line = f"The model predicts {expl.predicted[0]} ({expl.probabilities[expl.predicted[0]]:.1%})."
    return heading, f"{expl.label} ({'predicted' if expl.is_predicted else 'not predicted'})", (
        f'<p class="predicted">{html.escape(line)}</p>\n')


def render_html(
    expl: Explanation, figures: dict[str, bytes], include_special: bool = False, means: list[bytes] | None = None
) -> str:
    """A self-contained page: no external files, figures inlined as data URIs. ``figures`` as
    :func:`attention_figures` gives them; ``means`` (one per layer, :func:`layer_means`) are drawn
    when not given. Special tokens are left out of the importance displays unless ``include_special``."""
    if means is None:
        means = layer_means(expl)
    probs = sorted(expl.probabilities.items(), key=lambda kv: -kv[1])
    prob_rows = "".join(
        f'<tr><td>{html.escape(lbl)}</td><td class="num">{p:.3f}</td>'
        f'<td><div class="bar" style="width:{p * 200:.1f}px"></div></td></tr>'
        for lbl, p in probs
    )
    notes = "".join(f'<p class="warn">{html.escape(n)}</p>' for n in expl.notes)
    heading, title, predicted = headline(expl)
    methods = "".join(_importance(expl, m, include_special) for m in expl.importance)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>classiformer explanation: {html.escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 70em; margin: 2em auto; padding: 0 1em; color: #222; }}
.tok {{ padding: 0.1em 0.15em; border-radius: 0.2em; line-height: 2; }}
.tok.special {{ outline: 1px dashed #999; }}
.text {{ font-size: 1.1em; }} .note {{ color: #666; font-size: 0.9em; margin: 0.2em 0; }}
.warn {{ background: #fff6db; border-left: 4px solid #e0a800; padding: 0.5em 0.8em; }}
.bar {{ background: #1f77b4; height: 0.8em; }} .num {{ text-align: right; padding-right: 1em; color: #555; }}
.legend {{ max-width: 24em; margin: 0.3em 0; }} .ramp {{ height: 0.8em; border: 1px solid #ccc; }}
.ends {{ display: flex; justify-content: space-between; font-size: 0.8em; color: #555; }}
.top {{ margin: 0.2em 0; columns: 5; font-size: 0.9em; }}
img {{ max-width: 100%; border: 1px solid #ddd; }} details {{ margin: 0.5em 0 1.5em; }}
summary {{ cursor: pointer; color: #1f5fa8; }}
</style></head><body>
<h1>{html.escape(heading)}</h1>
{predicted}<p>{html.escape(expl.text)}</p>
{notes}
<h2>{"Label probabilities (each label on its own)" if expl.multi_label else "Class probabilities"}</h2><table>{prob_rows}</table>
<h2>Token importance</h2>{methods}
<h2>Attention</h2>{_attention(expl, figures, means)}
</body></html>
"""


def write_figures(figures: dict[str, bytes], folder: Path, stem: str) -> dict[str, Path]:
    """Write one ``{stem}_{figure}.png`` per figure of :func:`attention_figures` into ``folder``."""
    out: dict[str, Path] = {}
    for name, png in figures.items():
        path = folder / f"{stem}_{name}.png"
        path.write_bytes(png)
        out[f"png_{name}"] = path
    return out


def write_explanation(
    expl: Explanation, folder: Path, stem: str = "explanation", include_special: bool = False,
    png_stem: str | None = None,
) -> dict[str, Path]:
    """Write ``{stem}.json``, ``{stem}.html`` and one ``{png_stem}_{figure}.png`` per attention
    figure (``png_stem`` defaults to ``stem``; an empty one writes no PNG: the attention of a text
    is the same whichever label is explained, so the figures of its other labels need not be
    written again) into ``folder``. Returns the paths written, by kind."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    figures = attention_figures(expl)
    png_stem = stem if png_stem is None else png_stem
    out = write_figures(figures, folder, png_stem) if png_stem else {}
    atomic_write_text(folder / f"{stem}.json", json.dumps(expl.to_dict(), ensure_ascii=False))
    out["json"] = folder / f"{stem}.json"
    atomic_write_text(folder / f"{stem}.html", render_html(expl, figures, include_special))
    out["html"] = folder / f"{stem}.html"
    return out
