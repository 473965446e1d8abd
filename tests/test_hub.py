"""Hub ids with and without a network: a local HTTP server on loopback stands in for the Hugging
Face hub (``HF_ENDPOINT``), so the real download path runs. huggingface_hub reads ``HF_ENDPOINT``,
``HF_HOME`` and ``HF_HUB_OFFLINE`` once, at import, so each case runs in a fresh interpreter."""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from classiformer.hub import hub_reachable

COMMIT = "0123456789abcdef0123456789abcdef01234567"
CONFIG = {"model_type": "bert", "vocab_size": 99, "hidden_size": 36, "num_attention_heads": 3,
          "num_hidden_layers": 2, "intermediate_size": 37, "max_position_embeddings": 40}


class Hub:
    """A minimal hub: ``/{org}/{name}/resolve/{revision}/{file}`` from ``root/{org}/{name}/{file}``,
    with the commit and ETag headers that huggingface_hub checks."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.requests: list[str] = []
        hub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_HEAD(self) -> None:
                self.serve(body=False)

            def do_GET(self) -> None:
                self.serve(body=True)

            def serve(self, body: bool) -> None:
                hub.requests.append(f"{self.command} {self.path}")
                parts = self.path.split("?")[0].strip("/").split("/")
                f = hub.root.joinpath(*parts[:2], *parts[4:]) if len(parts) > 4 and parts[2] == "resolve" else None
                if f is None or not f.is_file():
                    self.send_response(404)
                    self.send_header("X-Error-Code", "EntryNotFound" if f is not None else "RepoNotFound")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                data = f.read_bytes()
                self.send_response(200)
                self.send_header("X-Repo-Commit", COMMIT)
                self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if body:
                    self.wfile.write(data)

            def log_message(self, *a: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    root = tmp_path / "hub"
    (root / "tiny-org" / "tiny-bert").mkdir(parents=True)
    (root / "tiny-org" / "tiny-bert" / "config.json").write_text(json.dumps(CONFIG))
    h = Hub(root)
    yield h
    h.close()


def free_port() -> int:
    """A loopback port with nothing listening on it (connections are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


RESOLVE = """
import json, sys, time
import transformers, huggingface_hub  # imported before the clock starts: only resolve_source is timed
from classiformer.hub import ModelSourceError, resolve_source
t = time.monotonic()
try:
    out = {"source": resolve_source(sys.argv[1])}
except ModelSourceError as e:
    out = {"error": str(e)}
out["seconds"] = time.monotonic() - t
print(json.dumps(out))
"""


def resolve_in_fresh_process(name: str, endpoint: str, hf_home: Path, offline: bool = False) -> tuple[dict, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    env.update(HF_ENDPOINT=endpoint, HF_HOME=str(hf_home), HF_HUB_DISABLE_XET="1")
    if offline:
        env["HF_HUB_OFFLINE"] = "1"
    p = subprocess.run([sys.executable, "-c", RESOLVE, name], env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout.strip().splitlines()[-1]), p.stderr


def test_hub_id_downloads_then_works_offline_from_the_cache(hub: Hub, tmp_path: Path) -> None:
    home = tmp_path / "hf_home"
    out, _ = resolve_in_fresh_process("tiny-org/tiny-bert", hub.url, home)
    assert out == {"source": "tiny-org/tiny-bert", "seconds": out["seconds"]}
    assert any("/tiny-org/tiny-bert/resolve/main/config.json" in r for r in hub.requests)
    hub.close()
    # The hub is gone (nothing listens there any more): the cached id loads from its snapshot, fast.
    out, err = resolve_in_fresh_process("tiny-org/tiny-bert", hub.url, home)
    assert "error" not in out, out
    assert json.loads((Path(out["source"]) / "config.json").read_text())["hidden_size"] == 36
    assert out["seconds"] < 5, out
    assert "Retrying" not in err
    out, _ = resolve_in_fresh_process("tiny-org/tiny-bert", hub.url, home, offline=True)
    assert Path(out["source"], "config.json").exists()


@pytest.mark.parametrize("offline", [False, True])
def test_uncached_hub_id_without_a_network_fails_at_once(tmp_path: Path, offline: bool) -> None:
    # Without the probe, huggingface_hub retried the dead endpoint for ~23 s, each warning twice.
    out, err = resolve_in_fresh_process("bert-base-uncased", f"http://127.0.0.1:{free_port()}", tmp_path / "hf", offline)
    assert out["seconds"] < 3, out
    assert "model 'bert-base-uncased' is not in the local Hugging Face cache and " in out["error"]
    assert ("HF_HUB_OFFLINE" if offline else "cannot be reached") in out["error"]
    assert "download it once with network access, pass a local model folder, or use 'minilm'" in out["error"]
    assert "Retrying" not in err


def test_probe_gives_up_on_a_server_that_never_answers() -> None:
    with socket.socket() as silent:  # accepts connections (the kernel's backlog) but never replies
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        t = time.monotonic()
        assert not hub_reachable(f"http://127.0.0.1:{silent.getsockname()[1]}", timeout=1.0)
        assert time.monotonic() - t < 2.0
    assert not hub_reachable(f"http://127.0.0.1:{free_port()}")


def test_probe_counts_any_http_answer(hub: Hub) -> None:
    assert hub_reachable(hub.url)  # "/" is a 404 here: the server is there all the same
