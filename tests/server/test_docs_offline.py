"""``/docs`` works offline: Swagger UI's files are served by the app itself, the page's
Content-Security-Policy allows nothing else, and a real browser that cannot reach beyond the
server renders the operations."""

from __future__ import annotations

import base64
import hashlib
import os
import re
import shutil
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from classiformer import Classifier
from classiformer.server import create_app

from .conftest import free_port, running_server

EXPECTED_TYPES = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}


def local_references(html: str) -> list[str]:
    return re.findall(r"""(?:src|href)=["']([^"']+)["']""", html)


def test_docs_reference_only_assets_the_app_serves(classifier: Classifier) -> None:
    with TestClient(create_app(classifier)) as client:
        page = client.get("/docs")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "http://" not in page.text and "https://" not in page.text
        refs = local_references(page.text)
        assert {Path(r).suffix for r in refs} == {".js", ".css", ".png"}, refs
        for ref in refs:
            assert ref.startswith("/"), ref
            asset = client.get(ref)
            assert asset.status_code == 200, ref
            assert asset.headers["content-type"].startswith(EXPECTED_TYPES[Path(ref).suffix]), (ref, asset.headers)
            assert len(asset.content) > 1_000  # the real file, not an error page
        assert "SwaggerUIBundle" in client.get(next(r for r in refs if r.endswith(".js"))).text
        # FastAPI's CDN-loading ReDoc page is off rather than blank.
        assert client.get("/redoc").status_code == 404


def test_docs_csp_allows_only_this_origin_and_the_pages_own_init_script(classifier: Classifier) -> None:
    with TestClient(create_app(classifier)) as client:
        page = client.get("/docs")
    csp = dict(
        (d.split()[0], d.split()[1:]) for d in (x.strip() for x in page.headers["content-security-policy"].split(";")) if d
    )
    inline = re.findall(r"<script>(.*?)</script>", page.text, re.DOTALL)
    assert len(inline) == 1 and "SwaggerUIBundle(" in inline[0]
    digest = base64.b64encode(hashlib.sha256(inline[0].encode()).digest()).decode()
    assert csp["script-src"] == ["'self'", f"'sha256-{digest}'"]
    assert csp["default-src"] == ["'self'"] and csp["style-src"] == ["'self'"] and csp["connect-src"] == ["'self'"]
    assert "unsafe-inline" not in page.headers["content-security-policy"]


def test_swagger_ui_renders_offline_in_a_browser(browser, classifier: Classifier, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with running_server(create_app(classifier), free_port()) as url:
        context = browser.new_context(viewport={"width": 1100, "height": 1200})
        outside: list[str] = []

        def offline(route):  # type: ignore[no-untyped-def]
            # As on a machine without internet: only the server answers.
            if route.request.url.startswith(url):
                route.continue_()
            else:
                outside.append(route.request.url)
                route.abort()

        context.route("**/*", offline)
        page = context.new_page()
        problems: list[str] = []
        page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
        page.on("console", lambda m: problems.append(f"console: {m.text}") if m.type == "error" else None)
        page.goto(url + "/docs")
        page.locator(".opblock-summary-path[data-path='/v1/predict']").wait_for(timeout=20_000)
        paths = page.eval_on_selector_all(".opblock-summary-path", "els => els.map(e => e.dataset.path)")
        title = page.text_content(".information-container .title") or ""
        # The page is styled by the served CSS (a method badge is coloured, not default black on white).
        badge = page.eval_on_selector(".opblock-post .opblock-summary-method", "e => getComputedStyle(e).backgroundColor")
        # "Try it out" sends the documented example from the page (connect-src 'self' allows it).
        page.click(".opblock-summary-path[data-path='/v1/predict']")
        page.click("button.try-out__btn")
        page.click("button.execute")
        status = page.locator(".live-responses-table td.response-col_status:not(.col_header)")
        status.wait_for(timeout=20_000)
        answered = (status.text_content() or "").strip()
        answer = page.locator(".live-responses-table td.response-col_description:not(.col_header)").text_content() or ""
        shot = tmp_path / "docs.png"
        page.screenshot(path=str(shot), full_page=True)
        context.close()
    assert not outside, f"/docs tried to fetch from elsewhere: {outside}"
    assert not problems, problems  # a CSP refusal shows up here as a console error
    assert {"/v1/predict", "/v1/explain", "/v1/model", "/healthz", "/readyz"} <= set(paths)
    assert "classiformer" in title
    assert badge not in ("rgba(0, 0, 0, 0)", "rgb(255, 255, 255)"), badge
    assert answered == "200" and '"predictions"' in answer, (answered, answer)
    assert shot.stat().st_size > 20_000
    keep = os.environ.get("CLASSIFORMER_DOCS_SCREENSHOT")
    if keep:
        shutil.copy(shot, keep)


def test_without_the_assets_package_docs_say_how_to_get_them(classifier: Classifier, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("classiformer.server.routes.docs.assets_dir", lambda: None)
    with TestClient(create_app(classifier)) as client:
        page = client.get("/docs")
    assert page.status_code == 200
    assert "pip install 'classiformer[serve]'" in page.text and "/openapi.json" in page.text
    assert "https://" not in page.text and "script-src 'self';" in page.headers["content-security-policy"]
