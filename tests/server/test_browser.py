"""End to end in a real browser: headless Chromium (Debian's) driven by Playwright opens the page,
types a text, clicks, reads the prediction and takes a screenshot."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from classiformer import Classifier
from classiformer.server import create_app

from .conftest import free_port, running_server


def test_page_classifies_typed_text(browser, classifier: Classifier, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    text = "the coach says the team scored a late goal in the match"
    expected = classifier.predict_proba([text])[0]
    outside: list[str] = []
    with running_server(create_app(classifier), free_port()) as url:
        page = browser.new_page(viewport={"width": 900, "height": 1000})
        page.on("request", lambda r: None if r.url.startswith(url) else outside.append(r.url))
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(url + "/")
        page.locator("#model-info", has_text="classes").wait_for(timeout=15_000)
        page.fill("#text", text)
        page.click("#predict")
        page.wait_for_selector("#result[data-done='true']", timeout=15_000)
        label = page.text_content("#label")
        bars = page.eval_on_selector_all(
            "#bars .bar", "rows => rows.map(r => [r.dataset.label, r.querySelector('.fill').style.width])"
        )
        explained = page.get_attribute("#explanation", "data-ready") == "true"
        note = page.text_content("#explain-note") or ""
        special_box = page.is_visible("#special-box")  # word tokens: no special tokens to offer
        shot = tmp_path / "page.png"
        page.screenshot(path=str(shot), full_page=True)
        page.close()
    assert not errors, errors
    assert not outside, f"the page fetched from elsewhere: {outside}"
    assert label == classifier.labels[int(expected.argmax())]
    assert sorted(lbl for lbl, _ in bars) == sorted(classifier.labels)
    widths = {lbl: float(w.rstrip("%")) / 100 for lbl, w in bars}
    for lbl, p in zip(classifier.labels, expected):
        assert abs(widths[lbl] - p) < 0.002  # each bar is its class probability
    assert explained, note
    assert not special_box
    assert shot.stat().st_size > 5_000
    keep = os.environ.get("CLASSIFORMER_SCREENSHOT")
    if keep:
        shutil.copy(shot, keep)


def _pixel(page, x: int, y: int) -> tuple[int, int, int]:  # type: ignore[no-untyped-def]
    r, g, b, _ = page.evaluate(
        "([x, y]) => Array.from(document.getElementById('heatmap').getContext('2d').getImageData(x, y, 1, 1).data)",
        [x, y],
    )
    return r, g, b


def test_page_explanation_is_readable(browser, classifier: Classifier, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The explanation as a person sees it: special tokens left out of the highlighting unless asked,
    the model's notes shown, and the attention map on a fixed 0-1 scale with its legend, so an even
    spread of attention is pale and attention on one token dark. The server's answer is replaced by
    one with known tokens and weights (the tiny served model has no special tokens)."""
    import json

    tokens = ["[CLS]", "stocks", "rally", "as", "oil", "[SEP]"]
    T = len(tokens)
    matrix = [[1.0 / T] * T for _ in range(T)]  # an even spread: every row the same
    matrix[1] = [0.0, 0.0, 0.5, 0.0, 0.5, 0.0]  # "stocks" looks at "rally" and "oil" only; the peak is 0.5
    answer = {
        "text": "stocks rally as oil", "tokens": tokens, "label": classifier.labels[0],
        "probabilities": {lbl: 1.0 / len(classifier.labels) for lbl in classifier.labels},
        "importance": {"rollout": [0.7, 0.05, 0.1, 0.05, 0.05, 0.05], "gradient": [0.0, 0.2, -0.1, 0.0, 0.4, 0.0]},
        "special": [True, False, False, False, False, True],
        "notes": ["Gradients and attention explain only the transformer part."],
        "attention": {"layer": 1, "layers": 2, "heads": 12, "reduction": "mean over heads", "matrix": matrix},
    }
    with running_server(create_app(classifier), free_port()) as url:
        page = browser.new_page(viewport={"width": 900, "height": 1400})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.route("**/v1/explain", lambda route: route.fulfill(status=200, content_type="application/json",
                                                                 body=json.dumps(answer)))
        page.goto(url + "/")
        page.locator("#model-info", has_text="classes").wait_for(timeout=15_000)
        page.fill("#text", "stocks rally as oil")
        page.click("#predict")
        page.wait_for_selector("#explanation[data-ready='true']", timeout=15_000)
        shown = page.eval_on_selector_all("#tokens .tok", "spans => spans.map(s => s.textContent)")
        notes = page.text_content("#explain-notes") or ""
        scale = page.text_content("#token-scale") or ""
        legend_visible = page.is_visible("#attention-legend")
        legend = page.text_content("#attention-legend") or ""
        note = page.text_content("#attention-note") or ""
        cell = (480 - 80) // T

        def centre(i: int, j: int) -> tuple[int, int, int]:
            return _pixel(page, 80 + j * cell + cell // 2, 80 + i * cell + cell // 2)

        even, focused, ignored = centre(0, 0), centre(1, 4), centre(1, 0)
        shot = tmp_path / "explanation.png"
        page.screenshot(path=str(shot), full_page=True)
        special_box = page.is_visible("#special-box")
        page.check("#show-special")
        everything = page.eval_on_selector_all("#tokens .tok", "spans => spans.map(s => s.textContent)")
        page.close()
    assert not errors, errors
    assert shown == tokens[1:-1]  # no [CLS], no [SEP] by default
    assert special_box and everything == tokens
    assert "2 special tokens left out" in scale
    assert "only the transformer part" in notes
    assert legend_visible and "0" in legend and "1" in legend and "fixed 0–1 scale" in legend
    assert "12 heads" in note
    assert min(even) > 200, f"an even spread of attention must look pale, got rgb{even}"
    # 0.5 is drawn as the middle of the fixed scale (matplotlib's "Blues" there), not as the map's
    # peak at full colour; the even 1/6 stays pale rather than a third of the way up
    assert all(abs(c - e) <= 4 for c, e in zip(focused, (107, 174, 214))), f"0.5 drawn as rgb{focused}"
    assert min(ignored) > 240, f"no attention must look white, got rgb{ignored}"
    keep = os.environ.get("CLASSIFORMER_EXPLAIN_SCREENSHOT")
    if keep:
        shutil.copy(shot, keep)


def test_page_shows_a_multilabel_models_label_set(browser, multilabel_classifier: Classifier, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A multi-label model: the header calls its outputs labels, not classes; the result is the label
    set at the tuned thresholds (highlighted) with a score bar for every label."""
    from classiformer import read_dataset

    from ..test_multilabel_fit import write

    texts = read_dataset(write(tmp_path / "t.jsonl", 40, seed=5)).texts
    text = next(t for t, s in zip(texts, multilabel_classifier.predict(texts)) if len(s) > 1)  # two labels at once
    expected_set = multilabel_classifier.predict([text])[0]
    expected = multilabel_classifier.predict_proba([text])[0]
    with running_server(create_app(multilabel_classifier), free_port()) as url:
        page = browser.new_page(viewport={"width": 900, "height": 1000})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(url + "/")
        page.wait_for_function("document.getElementById('model-info').textContent.includes(':')", timeout=15_000)
        header = page.text_content("#model-info") or ""
        page.fill("#text", text)
        page.click("#predict")
        page.wait_for_selector("#result[data-done='true']", timeout=15_000)
        label = page.text_content("#label")
        bars = page.eval_on_selector_all(
            "#bars .bar", "rows => rows.map(r => [r.dataset.label, r.querySelector('.fill').style.width, r.classList.contains('top')])"
        )
        page.close()
    assert not errors, errors
    n = len(multilabel_classifier.labels)
    assert f"{n} labels: " in header and "classes" not in header, header
    assert label == ", ".join(expected_set)
    assert sorted(lbl for lbl, _, _ in bars) == sorted(multilabel_classifier.labels)
    assert sorted(lbl for lbl, _, top in bars if top) == sorted(expected_set)
    for lbl, width, _ in bars:
        assert abs(float(width.rstrip("%")) / 100 - expected[multilabel_classifier.labels.index(lbl)]) < 0.002
