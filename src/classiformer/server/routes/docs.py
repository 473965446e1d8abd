"""The API docs at ``/docs``: Swagger UI served by this app, so that they work offline.

FastAPI's default page loads Swagger UI from a CDN, which leaves ``/docs`` blank on a machine
without internet. Here its JavaScript and CSS come from the ``fastapi-offline`` package (Swagger UI
5, which reads the OpenAPI 3.1 document FastAPI writes; ``swagger-ui-bundle`` ships 4.x, which
cannot), mounted under ``/docs/assets``. The page's Content-Security-Policy allows scripts from
this origin plus the one inline script that starts Swagger UI, by its SHA-256 hash (CSP level 2),
so no ``'unsafe-inline'`` is needed. FastAPI documents the pattern as "self-hosting JavaScript
and CSS for docs".
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import re
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse

ASSETS_URL = "/docs/assets"
SWAGGER_JS = "swagger-ui-bundle.js"
SWAGGER_CSS = "swagger-ui.css"
FAVICON = "favicon.png"
_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)

router = APIRouter(include_in_schema=False)


def assets_dir() -> Path | None:
    """The folder holding Swagger UI's files, or None when ``fastapi-offline`` is not installed
    (found without importing it: the package is only a holder of files here)."""
    spec = importlib.util.find_spec("fastapi_offline")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "static"
    return folder if (folder / SWAGGER_JS).is_file() and (folder / SWAGGER_CSS).is_file() else None


def content_security_policy(html: str) -> str:
    """The page's CSP: everything from this origin, plus its inline scripts by hash."""
    scripts = " ".join(["'self'", *(
        "'sha256-" + base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode("ascii") + "'"
        for script in _INLINE_SCRIPT.findall(html)
    )])
    return ("default-src 'self'; img-src 'self' data:; style-src 'self'; "
            f"script-src {scripts}; connect-src 'self'; frame-ancestors 'none'")


_MISSING = """<!DOCTYPE html><html><head><title>classiformer API docs</title></head><body>
<p>Swagger UI is not installed here: <code>pip install 'classiformer[serve]'</code> adds it.
The OpenAPI document is at <a href="{openapi}">{openapi}</a>.</p></body></html>"""


@router.get("/docs")
async def swagger_ui(request: Request) -> HTMLResponse:
    root = request.scope.get("root_path", "")
    openapi = root + (request.app.openapi_url or "/openapi.json")
    if assets_dir() is None:
        html = _MISSING.format(openapi=openapi)
    else:
        page = get_swagger_ui_html(
            openapi_url=openapi, title=f"{request.app.title} API docs",
            swagger_js_url=f"{root}{ASSETS_URL}/{SWAGGER_JS}", swagger_css_url=f"{root}{ASSETS_URL}/{SWAGGER_CSS}",
            swagger_favicon_url=f"{root}{ASSETS_URL}/{FAVICON}",
            oauth2_redirect_url=None,
            # Swagger UI's default validator badge would fetch from the validator's site.
            swagger_ui_parameters={"validatorUrl": None},
        )
        html = bytes(page.body).decode("utf-8")
    return HTMLResponse(html, headers={"Content-Security-Policy": content_security_policy(html)})
