"""``create_app(model, settings)``: the FastAPI application serving one classifier.

The model is loaded in the lifespan (at start-up, never at import) and closed after the last
in-flight request has been answered: uvicorn stops accepting connections on SIGTERM, lets open
requests finish, then runs the lifespan's shutdown, which drains the batcher.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.staticfiles import StaticFiles

from .. import __version__
from ..predict import Classifier
from .errors import install_error_handlers
from .middleware import BodySizeLimit
from .routes import docs, explain, health, model, page, predict
from .security import API_KEY_HEADER, ApiKeyGuard, require_api_key
from .service import ModelService
from .settings import ServerSettings

log = logging.getLogger(__name__)


def create_app(model_or_path: str | Path | Classifier, settings: ServerSettings | None = None) -> FastAPI:
    """An app serving ``model_or_path`` (a run/checkpoint folder, loaded at start-up, or a loaded
    ``Classifier``)."""
    settings = settings or ServerSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if isinstance(model_or_path, Classifier):
            clf = model_or_path
        else:
            log.info("loading model from %s", model_or_path)
            clf = await asyncio.to_thread(
                Classifier.load, model_or_path, settings.device, settings.inference_batch_size
            )
        service = ModelService(clf, settings)
        service.start()
        app.state.service = service
        log.info("serving %s (%d labels; batching %s)", clf.path or "model", len(clf.labels),
                 f"on, up to {settings.max_batch_size} texts / {settings.max_wait_ms} ms" if settings.batching else "off")
        try:
            yield
        finally:
            app.state.service = None
            await service.close()
            log.info("model service stopped")

    app = FastAPI(
        title="classiformer",
        version=__version__,
        description="Classify texts with a trained classiformer model. The web page at / tries it out.",
        lifespan=lifespan,
        # FastAPI's own pages load their scripts from a CDN; /docs is served from here instead.
        docs_url=None, redoc_url=None,
    )
    app.state.settings = settings
    app.state.service = None
    install_error_handlers(app)
    app.include_router(health.router)
    guarded = [Depends(require_api_key)]
    app.include_router(predict.router, dependencies=guarded)
    app.include_router(explain.router, dependencies=guarded)
    app.include_router(model.router, dependencies=guarded)
    app.include_router(page.router)
    app.include_router(docs.router)
    app.mount("/static", StaticFiles(directory=page.STATIC_DIR), name="static")
    swagger_assets = docs.assets_dir()
    if swagger_assets is not None:
        app.mount(docs.ASSETS_URL, StaticFiles(directory=swagger_assets), name="docs-assets")
    # Middleware added last runs first: CORS, then the key, then the body is read.
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes, read_timeout_s=settings.read_timeout_s)
    app.add_middleware(ApiKeyGuard, api_key=settings.api_key)
    if settings.cors_origins:  # off unless asked for
        app.add_middleware(
            CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["GET", "POST"],
            allow_headers=["Content-Type", API_KEY_HEADER],
        )
    return app
