"""End to end in a real browser: headless Chromium (Debian's) driven by Playwright opens the page,
types a text, clicks, reads the prediction and takes a screenshot."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from classiformer import Classifier
from classiformer.server import create_app

from .conftest import free_port, running_server

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


def find_chromium() -> str | None:
    for candidate in (os.environ.get("CLASSIFORMER_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium"),
                      shutil.which("chromium-browser")):
        if candidate and Path(candidate).exists():
            return candidate
    return None


@pytest.fixture(scope="module")
def browser():  # type: ignore[no-untyped-def]
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
    executable = find_chromium()
    if executable is None:
        pytest.skip("no Chromium browser installed (apt-get install chromium; scripts/test.sh does it when root)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


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
    assert shot.stat().st_size > 5_000
    keep = os.environ.get("CLASSIFORMER_SCREENSHOT")
    if keep:
        shutil.copy(shot, keep)
