"""Server test fixtures: a tiny trained model (trained once per session) and a real uvicorn server."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

import classiformer
from classiformer import Classifier, resolve_config

from ..conftest import make_texts


@pytest.fixture(scope="session")
def served_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run folder holding a tiny model trained for 2 epochs on toy topics (money/sports/tech)."""
    run = tmp_path_factory.mktemp("served") / "run"
    config = resolve_config("tiny", train={"epochs": 2, "lr": 3e-2, "batch_size": 16})
    classiformer.fit(config, make_texts(240, seed=1), run, progress=False)
    return run


@pytest.fixture(scope="session")
def classifier(served_model: Path) -> Classifier:
    return Classifier.load(served_model, device="cpu")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running_server(app, port: int) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """Serve ``app`` with uvicorn on 127.0.0.1:``port`` in a thread; yields the base URL."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("test server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


def find_chromium() -> str | None:
    for candidate in (os.environ.get("CLASSIFORMER_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium"),
                      shutil.which("chromium-browser")):
        if candidate and Path(candidate).exists():
            return candidate
    return None


# Module-scoped: Playwright's sync API holds an event loop while open, which asyncio.run in other
# test modules would trip over.
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
