"""Explanations for people and programs: attention heatmaps (PNG), a self-contained HTML page
(the text highlighted by importance, the predicted label and class probabilities, the heatmaps
embedded as data URIs) and JSON."""

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
    "gradient": "integrated gradients (Sundararajan et al., 2017): red supports the predicted label, blue opposes it",
    "attention": "attention weights: the pooling layer's (RNN) or the last layer's, heads averaged",
}


def attention_figures(expl: Explanation) -> dict[str, bytes]:
    """PNG bytes per figure name: ``layer{l}`` (heads side by side, tokens on both axes) for
    self-attention models, ``attention`` (one row over the tokens) for attention pooling."""
    figures: dict[str, bytes] = {}
    if expl.attentions is not None:
        att = np.asarray(expl.attentions)  # (L, H, T, T)
        for layer in range(att.shape[0]):
            figures[f"layer{layer + 1}"] = plot_attention(  # type: ignore[assignment]
                att[layer], expl.tokens, None, title=f"layer {layer + 1}: attention per head (rows attend to columns)"
            )
    elif "attention" in expl.importance:
        w = np.asarray(expl.importance["attention"])[None]  # (1, T)
        figures["attention"] = plot_attention(w, expl.tokens, None, title="attention pooling over the tokens")  # type: ignore[assignment]
    return figures


def _highlight(tokens: list[str], scores: list[float]) -> str:
    s = np.asarray(scores, dtype=float)
    scale = float(np.abs(s).max()) or 1.0
    spans = []
    for tok, x in zip(tokens, s):
        a = min(1.0, abs(x) / scale)
        rgb = "214,39,40" if x >= 0 else "31,119,180"
        spans.append(
            f'<span class="tok" style="background: rgba({rgb},{a:.3f})" title="{x:.4g}">{html.escape(tok)}</span>'
        )
    return " ".join(spans)


def render_html(expl: Explanation, figures: dict[str, bytes]) -> str:
    """A self-contained page: no external files, figures inlined as data URIs."""
    probs = sorted(expl.probabilities.items(), key=lambda kv: -kv[1])
    prob_rows = "".join(
        f'<tr><td>{html.escape(lbl)}</td><td class="num">{p:.3f}</td>'
        f'<td><div class="bar" style="width:{p * 200:.1f}px"></div></td></tr>'
        for lbl, p in probs
    )
    methods = "".join(
        f"<h3>{html.escape(m)}</h3><p class=\"note\">{html.escape(METHOD_NOTES.get(m, ''))}</p>"
        f'<p class="text">{_highlight(expl.tokens, s)}</p>'
        for m, s in expl.importance.items()
    )
    imgs = "".join(
        f'<h3>{html.escape(name)}</h3><img alt="{html.escape(name)}" '
        f'src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}">'
        for name, png in figures.items()
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>classiformer explanation: {html.escape(expl.label)}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 70em; margin: 2em auto; padding: 0 1em; color: #222; }}
.tok {{ padding: 0.1em 0.15em; border-radius: 0.2em; line-height: 2; }}
.text {{ font-size: 1.1em; }} .note {{ color: #666; font-size: 0.9em; margin: 0; }}
.bar {{ background: #1f77b4; height: 0.8em; }} .num {{ text-align: right; padding-right: 1em; }}
img {{ max-width: 100%; border: 1px solid #ddd; }}
</style></head><body>
<h1>Predicted: {html.escape(expl.label)} ({expl.probabilities[expl.label]:.1%})</h1>
<p>{html.escape(expl.text)}</p>
<h2>Class probabilities</h2><table>{prob_rows}</table>
<h2>Token importance</h2>{methods}
<h2>Attention</h2>{imgs or "<p>This model has no attention weights to show.</p>"}
</body></html>
"""


def write_explanation(expl: Explanation, folder: Path, stem: str = "explanation") -> dict[str, Path]:
    """Write ``{stem}.json``, ``{stem}.html`` and one ``{stem}_{figure}.png`` per attention figure
    into ``folder``. Returns the paths written, by kind."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    figures = attention_figures(expl)
    out: dict[str, Path] = {}
    for name, png in figures.items():
        path = folder / f"{stem}_{name}.png"
        path.write_bytes(png)
        out[f"png_{name}"] = path
    atomic_write_text(folder / f"{stem}.json", json.dumps(expl.to_dict(), ensure_ascii=False))
    out["json"] = folder / f"{stem}.json"
    atomic_write_text(folder / f"{stem}.html", render_html(expl, figures))
    out["html"] = folder / f"{stem}.html"
    return out
