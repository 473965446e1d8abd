"""Slow and idle clients against the real server (uvicorn on loopback, configured as
``classiformer serve`` configures it), through raw sockets: nothing holds a connection for ever."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import uvicorn

from classiformer import Classifier
from classiformer.server import ServerSettings, create_app
from classiformer.server.connections import uvicorn_config

from .conftest import free_port

READ_TIMEOUT = 0.6
KEEP_ALIVE = 1
GRACE = 2.5  # scheduling slack on a busy machine; every wait below is bounded by it


@contextmanager
def serving(classifier: Classifier, **settings: object) -> Iterator[int]:
    options: dict = {"read_timeout_s": READ_TIMEOUT, "keep_alive_timeout_s": KEEP_ALIVE, **settings}
    port = free_port()
    config = uvicorn_config(create_app(classifier, ServerSettings(**options)), "127.0.0.1", port,
                            ServerSettings(**options), log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "test server did not start"
        time.sleep(0.02)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def port(classifier: Classifier) -> Iterator[int]:
    with serving(classifier, max_connections=500) as p:
        yield p


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=READ_TIMEOUT + GRACE)


def read_until_closed(s: socket.socket) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and when it closed it; fails
    (socket timeout) if it is still open ``READ_TIMEOUT + GRACE`` after the last byte."""
    data = b""
    while True:
        try:
            chunk = s.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        data += chunk
    return data, time.monotonic()


def test_a_connection_that_sends_nothing_is_closed(port: int) -> None:
    with connect(port) as s:
        start = time.monotonic()
        data, closed = read_until_closed(s)
    assert data == b""
    assert READ_TIMEOUT * 0.8 <= closed - start < READ_TIMEOUT + GRACE


def test_many_idle_connections_are_all_closed(port: int) -> None:
    sockets = [connect(port) for _ in range(100)]
    try:
        start = time.monotonic()
        for s in sockets:
            read_until_closed(s)  # raises socket.timeout for one left open
        assert time.monotonic() - start < READ_TIMEOUT + GRACE
    finally:
        for s in sockets:
            s.close()


def test_headers_trickled_in_are_cut_off_in_total(port: int) -> None:
    # One byte every 0.1 s never leaves the connection idle, yet the headers are late.
    head = b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" + b"X-Pad: " + b"a" * 200
    with connect(port) as s:
        start = time.monotonic()
        closed_at = None
        for i in range(len(head)):
            try:
                s.sendall(head[i:i + 1])
            except (BrokenPipeError, ConnectionResetError):
                closed_at = time.monotonic()
                break
            time.sleep(0.1)
            if time.monotonic() - start > READ_TIMEOUT + GRACE:
                break
        if closed_at is None:
            _, closed_at = read_until_closed(s)
    assert closed_at - start < READ_TIMEOUT + GRACE


def test_a_body_shorter_than_its_content_length_gets_408(port: int) -> None:
    body = json.dumps({"texts": ["goal team match"]}).encode()
    with connect(port) as s:
        s.sendall(b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: %d\r\n\r\n" % (len(body) + 10) + body)
        start = time.monotonic()
        data, closed = read_until_closed(s)
    head, _, payload = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408"), data
    error = json.loads(payload)["error"]
    assert error["limit"] == "read_timeout_s" and error["value"] == READ_TIMEOUT
    assert closed - start < READ_TIMEOUT + GRACE


def test_a_connection_idle_after_its_response_is_closed(port: int) -> None:
    with connect(port) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        start = time.monotonic()
        data, closed = read_until_closed(s)
    assert data.startswith(b"HTTP/1.1 200") and b'"ok"' in data
    assert closed - start < KEEP_ALIVE + GRACE


def test_a_slow_but_timely_client_is_served(port: int) -> None:
    body = json.dumps({"texts": ["goal team match"]}).encode()
    with connect(port) as s:
        s.sendall(b"POST /v1/predict HTTP/1.1\r\nHost: x\r\n")
        time.sleep(READ_TIMEOUT / 3)
        s.sendall(b"Content-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(body))
        time.sleep(READ_TIMEOUT / 3)
        s.sendall(body)
        data, _ = read_until_closed(s)
    assert data.startswith(b"HTTP/1.1 200"), data
    assert json.loads(data.partition(b"\r\n\r\n")[2])["predictions"][0]["label"]


def test_connections_beyond_the_limit_are_answered_503(classifier: Classifier) -> None:
    with serving(classifier, max_connections=3, read_timeout_s=5.0) as p:
        held = [connect(p) for _ in range(3)]
        try:
            time.sleep(0.2)  # the server has accepted them
            with connect(p) as s:
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                assert s.recv(65536).startswith(b"HTTP/1.1 503")
        finally:
            for s in held:
                s.close()
        time.sleep(0.2)  # their slots are free again
        with connect(p) as s:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert read_until_closed(s)[0].startswith(b"HTTP/1.1 200")


def test_classiformer_serve_applies_the_read_timeout(served_model: Path) -> None:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "classiformer", "serve", str(served_model), "--port", str(port),
         "--read-timeout", str(READ_TIMEOUT), "--threads", "1"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                    s.sendall(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    if read_until_closed(s)[0].startswith(b"HTTP/1.1 200"):
                        break
            except OSError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, "server did not become ready"
            time.sleep(0.2)
        with connect(port) as s:
            start = time.monotonic()
            assert read_until_closed(s)[0] == b""
        assert time.monotonic() - start < READ_TIMEOUT + GRACE
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
