"""What a person sees of an explanation: attention heatmaps on a fixed scale with a legend, many
heads laid out in a grid led by their mean, and special tokens left out of importance displays."""

from __future__ import annotations

import html.parser
import io

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.image import AxesImage

from classiformer.explain import Explanation
from classiformer.explain_report import attention_figures, render_html, shades
from classiformer.plots import attention_figure, plot_attention

TOKENS = ["[CLS]", "stocks", "rally", "as", "oil", "prices", "fall", "after", "the", "bank", "cuts", "rates", "[SEP]"]


def rows_of(rng: np.random.Generator, heads: int, T: int, peak: float = 8.0) -> np.ndarray:
    w = rng.random((heads, T, T)) ** peak  # (H, T, T), rows made into distributions below
    return w / w.sum(-1, keepdims=True)


def panels(fig: plt.Figure) -> list[AxesImage]:
    return [im for ax in fig.axes for im in ax.get_images()]


def test_twelve_heads_are_a_grid_led_by_their_mean_on_one_fixed_scale() -> None:
    w = rows_of(np.random.default_rng(0), 12, len(TOKENS))
    fig = attention_figure(w, TOKENS, title="layer 1")
    images = panels(fig)
    assert len(images) == 13  # the mean, then each head
    titles = [ax.get_title() for ax in fig.axes if ax.get_images()]
    assert titles[0] == "mean of 12 heads" and titles[1:] == [f"head {h}" for h in range(1, 13)]
    np.testing.assert_allclose(images[0].get_array(), w.mean(0))
    for im in images:  # every panel on the same 0-1 scale, whatever its own peak
        assert (im.norm.vmin, im.norm.vmax) == (0.0, 1.0)
    bars = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
    assert len(bars) == 1 and "0\u20131" in bars[0].get_ylabel()  # one legend, saying the scale
    plt.close(fig)

    png = plt.imread(io.BytesIO(plot_attention(w, TOKENS)))  # type: ignore[arg-type]
    height, width = png.shape[:2]
    assert 0.6 < width / height < 1.6, (width, height)  # a grid, not a 4171 x 391 strip
    assert width <= 2400 and height <= 2400


def test_pooling_weights_are_one_row_with_a_legend() -> None:
    fig = attention_figure(np.full((1, 9), 1 / 9), TOKENS[:9])
    (im,) = panels(fig)
    assert im.get_array().shape == (1, 9) and (im.norm.vmin, im.norm.vmax) == (0.0, 1.0)
    assert list(im.axes.get_yticks()) == []  # one row: no query axis to label
    assert any(ax.get_label() == "<colorbar>" for ax in fig.axes)
    plt.close(fig)


def cell_colours(w: np.ndarray) -> np.ndarray:
    """The colours the heatmap gives each cell (T, T, 3), as the figure maps them."""
    fig = attention_figure(w[None], TOKENS[: w.shape[-1]])
    (im,) = panels(fig)
    rgb = np.asarray(im.to_rgba(im.get_array()))[..., :3]
    plt.close(fig)
    return rgb


def luminance(rgb: np.ndarray) -> np.ndarray:
    return rgb @ np.array([0.2126, 0.7152, 0.0722])


def test_uniform_attention_looks_pale_and_peaked_attention_looks_dark() -> None:
    T = len(TOKENS)
    uniform = cell_colours(np.full((T, T), 1 / T))
    # Scaled to its own peak, a uniform map would be drawn at full colour everywhere.
    assert uniform.min() > 0.8, "an even spread of attention must look pale"
    peaked = cell_colours(np.eye(T))
    lum = luminance(peaked)
    assert lum[np.eye(T, dtype=bool)].max() < 0.3 and lum[~np.eye(T, dtype=bool)].min() > 0.9  # high contrast
    half = cell_colours(np.full((T, T), 0.5) * np.eye(T) + 0.5 / T)
    assert luminance(peaked).min() < luminance(half).min() < luminance(uniform).min()  # darker means more

    def dark_blue_share(w: np.ndarray) -> float:  # the PNG itself, not only the figure's mapping
        png = plt.imread(io.BytesIO(plot_attention(w[None], TOKENS)))[..., :3]  # type: ignore[arg-type]
        blue = (png[..., 2] - png[..., 0] > 0.25) & (luminance(png) < 0.45)  # dark cells, not black text
        return float(blue.mean())

    # the uniform map's only dark blue is the top of its colour bar
    assert dark_blue_share(np.eye(T)) > 4 * dark_blue_share(np.full((T, T), 1 / T))


def explanation(heads: int = 12) -> Explanation:
    rng = np.random.default_rng(1)
    T = len(TOKENS)
    rollout = np.full(T, 0.02)
    rollout[0], rollout[-1] = 0.6, 0.18  # rollout piles up on [CLS], as with a real BERT
    rollout[5] = 0.04
    att = np.stack([rows_of(rng, heads, T) for _ in range(2)])  # (L, H, T, T)
    return Explanation(
        text="stocks rally as oil prices fall after the bank cuts rates", tokens=TOKENS, label="money",
        probabilities={"money": 0.9, "sports": 0.1},
        importance={"rollout": rollout.tolist(), "gradient": np.linspace(-0.1, 0.3, T).tolist()},
        attentions=att.tolist(), special=[t in ("[CLS]", "[SEP]") for t in TOKENS],
        notes=["Gradients explain only the transformer part."],
    )


class Page(html.parser.HTMLParser):
    """Collects the highlighted tokens per method, legends, images and <details>."""

    def __init__(self) -> None:
        super().__init__()
        self.method: str | None = None
        self.in_tok = False
        self.tokens: dict[str, list[str]] = {}
        self.legends: list[str] = []
        self.images = 0
        self.details = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "section" and "method" in (a.get("class") or ""):
            self.method = a["data-method"]
            self.tokens[self.method or ""] = []
        classes = (a.get("class") or "").split()
        if tag == "span" and "tok" in classes:
            self.in_tok = True
        if tag == "div" and "legend" in classes:
            self.legends.append(a.get("data-method") or "")
        self.images += tag == "img"
        self.details += tag == "details"

    def handle_endtag(self, tag: str) -> None:
        if tag == "span":
            self.in_tok = False

    def handle_data(self, data: str) -> None:
        if self.in_tok and self.method:
            self.tokens[self.method].append(data)


def test_the_page_leaves_out_special_tokens_unless_asked_and_says_what_the_colours_mean() -> None:
    expl = explanation()
    figures = attention_figures(expl)
    assert sorted(figures) == ["layer1", "layer2"]
    page = render_html(expl, figures)
    parsed = Page()
    parsed.feed(page)
    assert parsed.tokens["rollout"] == TOKENS[1:-1]  # no [CLS], no [SEP]
    assert parsed.tokens["gradient"] == TOKENS[1:-1]
    assert sorted(parsed.legends) == ["gradient", "rollout"]
    assert parsed.images == 4 and parsed.details == 2  # per layer: the mean, and the heads on demand
    assert "Special tokens left out of this display: [CLS] (0.6), [SEP] (0.18)" in page
    assert "Gradients explain only the transformer part." in page
    assert "fixed scale" in page
    top = page[page.index("Top 5"):]
    assert top.index("prices") < top.index("stocks")  # the top list skips [CLS] too

    everything = Page()
    everything.feed(render_html(expl, figures, include_special=True))
    assert everything.tokens["rollout"] == TOKENS


def test_highlight_shades_an_even_spread_lightly_and_a_decisive_token_fully() -> None:
    even = shades(np.full(13, 1 / 13))
    np.testing.assert_allclose(even, 0.25)  # scaled to the peak, all would be 1.0
    one = shades(np.r_[0.7, np.full(12, 0.3 / 12)])
    assert one[0] == 1.0 and one[1:].max() < 0.1
    assert shades(np.zeros(3)).tolist() == [0.0, 0.0, 0.0]
    signed = shades(np.array([-0.5, 0.5, 0.0, 0.0]))
    assert signed.tolist() == [0.5, 0.5, 0.0, 0.0]  # 2x an even share each; sign picks only the colour


@pytest.mark.parametrize("include", [False, True])
def test_top_tokens_skip_special_tokens_unless_asked(include: bool) -> None:
    expl = explanation(heads=2)
    top = expl.top_tokens("rollout", 2, include_special=include)
    assert [t for t, _ in top] == (["[CLS]", "[SEP]"] if include else ["prices", "stocks"])
    assert expl.to_dict()["special"] == [True] + [False] * (len(TOKENS) - 2) + [True]  # the JSON keeps all
