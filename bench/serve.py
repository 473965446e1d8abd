"""Load test of ``classiformer serve``: throughput and latency with micro-batching on and off.

Starts the real server (a ``classiformer serve`` subprocess on a free loopback port) once per mode and
drives it with 1, 8 and 64 concurrent clients, each sending one text per request over a keep-alive
connection and waiting for the answer before sending the next (closed loop). Every level is bounded in
time (``--duration`` seconds) and in requests (``--max-requests``). Reports requests/s, p50/p99 latency,
errors (anything but a well-formed 200 with one prediction), the mean texts per model call (from
``GET /v1/model``) and the server's RSS before and after, then writes JSON to bench/results/.

``--compare DIR`` (repeatable) serves other folders the same way, one after another in the same run,
e.g. the int8 ONNX export of ``--model`` (``--export int8`` makes it first, with ``classiformer
export``): the table then has a row per model, and the RSS and throughput of each against the first.

The client is a minimal asyncio HTTP/1.1 client (tens of microseconds per request), so that on a
2-core machine it measures the server rather than itself. Loopback only.

    .venv/bin/python bench/serve.py                         # trains the lesson model on the AG News split (1 epoch)
    .venv/bin/python bench/serve.py --model runs/ag_news_lesson --duration 10
    .venv/bin/python bench/serve.py --model /tmp/minilm-sst2 --export int8 --modes on --clients 8 --duration 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / ".." / "shared" / "data"
AG_LABELS = {"1": "World", "2": "Sports", "3": "Business", "4": "Sci/Tech"}


def ag_news_split(data_dir: Path):  # type: ignore[no-untyped-def]
    from classiformer.data import Columns, read_dataset

    ds = read_dataset(data_dir / "ag_news" / "test.csv", Columns(label=0, text=[1, 2], header=False, label_map=AG_LABELS))
    return ds.subset([i for i in range(len(ds)) if i % 5 != 0]), ds.subset([i for i in range(len(ds)) if i % 5 == 0])


def train_model(train, folder: Path, preset: str, epochs: int) -> Path:  # type: ignore[no-untyped-def]
    from classiformer import fit, resolve_config

    t0 = time.perf_counter()
    fit(resolve_config(preset, train={"epochs": epochs}), train, folder, progress=False)
    print(f"trained {preset} on {len(train)} AG News texts for {epochs} epoch(s) in {time.perf_counter() - t0:.1f} s", flush=True)
    return folder


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self, model: Path, batching: bool, threads: int, max_batch_size: int, max_wait_ms: float) -> None:
        self.port = free_port()
        cmd = [sys.executable, "-c", "import sys; from classiformer.cli import main; sys.exit(main())", "serve", str(model),
               "--host", "127.0.0.1", "--port", str(self.port), "--threads", str(threads),
               "--max-batch-size", str(max_batch_size), "--max-wait-ms", str(max_wait_ms)]
        if not batching:
            cmd.append("--no-batching")
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
        self.log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115  (closed in stop())
        self.proc = subprocess.Popen(cmd, env=env, stdout=self.log, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.log.seek(0)
                raise RuntimeError(f"server exited:\n{self.log.read()}")
            try:
                if get_json(self.port, "/readyz")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise TimeoutError("server did not become ready")

    def rss_mb(self) -> float:
        import psutil

        return psutil.Process(self.proc.pid).memory_info().rss / 2**20

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=60)
        self.log.close()
        return code


def get_json(port: int, path: str) -> tuple[int, Any]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body) if body else None


async def _client(port: int, bodies: list[bytes], state: dict[str, Any], deadline: float, max_requests: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.perf_counter() < deadline and state["sent"] < max_requests:
            body = bodies[state["sent"] % len(bodies)]
            state["sent"] += 1
            request = (b"POST /v1/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                       b"Content-Length: %d\r\n\r\n" % len(body)) + body
            t0 = time.perf_counter()
            writer.write(request)
            status = int((await reader.readline()).split()[1])
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            payload = await reader.readexactly(length)
            state["latencies"].append(time.perf_counter() - t0)
            ok = status == 200
            if ok:
                try:
                    preds = json.loads(payload)["predictions"]
                    ok = len(preds) == 1 and preds[0]["label"] in state["labels"]
                except (ValueError, KeyError, TypeError):
                    ok = False
            if not ok:
                state["errors"] += 1
    finally:
        writer.close()


async def _load(port: int, bodies: list[bytes], clients: int, duration: float, max_requests: int, labels: set[str]) -> dict[str, Any]:
    state: dict[str, Any] = {"sent": 0, "errors": 0, "latencies": [], "labels": labels}
    t0 = time.perf_counter()
    await asyncio.gather(*(_client(port, bodies, state, t0 + duration, max_requests) for _ in range(clients)))
    wall = time.perf_counter() - t0
    lat = np.array(state["latencies"]) * 1000
    return {
        "requests": len(lat), "errors": state["errors"], "seconds": round(wall, 3),
        "throughput_rps": round(len(lat) / wall, 1),
        "p50_ms": round(float(np.percentile(lat, 50)), 2), "p99_ms": round(float(np.percentile(lat, 99)), 2),
    }


def run_mode(model: Path, batching: bool, bodies: list[bytes], labels: set[str], args: argparse.Namespace) -> list[dict[str, Any]]:
    server = Server(model, batching, args.threads, args.max_batch_size, args.max_wait_ms)
    rows = []
    try:
        server.wait_ready()
        rss_ready = server.rss_mb()
        asyncio.run(_load(server.port, bodies, 4, 2.0, 200, labels))  # warm-up
        rss_start = server.rss_mb()
        runtime = get_json(server.port, "/v1/model")[1].get("runtime", "pytorch")
        for clients in args.clients:
            before = get_json(server.port, "/v1/model")[1]["batching"]["stats"]
            row = asyncio.run(_load(server.port, bodies, clients, args.duration, args.max_requests, labels))
            after = get_json(server.port, "/v1/model")[1]["batching"]["stats"]
            calls = after["batches"] - before["batches"]
            row.update(model=str(model), runtime=runtime, batching="on" if batching else "off", clients=clients,
                       rss_ready_mb=round(rss_ready, 1),
                       texts_per_model_call=round((after["texts"] - before["texts"]) / calls, 2) if calls else 0.0,
                       rss_start_mb=round(rss_start, 1), rss_mb=round(server.rss_mb(), 1))
            rows.append(row)
            print(f"  batching {row['batching']:>3}, {clients:>2} clients: {row['throughput_rps']:8.1f} req/s  "
                  f"p50 {row['p50_ms']:7.2f} ms  p99 {row['p99_ms']:7.2f} ms  errors {row['errors']}", flush=True)
    finally:
        code = server.stop()
        for row in rows:
            row["exit_code_after_sigterm"] = code
    return rows


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help="a trained run or checkpoint folder (default: train one now)")
    p.add_argument("--preset", default="lesson", help="preset to train when --model is not given (default: lesson)")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--data-dir", type=Path, default=DATA)
    p.add_argument("--clients", default="1,8,64", help="concurrency levels (default: 1,8,64)")
    p.add_argument("--duration", type=float, default=8.0, help="seconds per level (default: 8)")
    p.add_argument("--max-requests", type=int, default=20_000, help="most requests per level (default: 20000)")
    p.add_argument("--threads", type=int, default=1, help="server torch threads (default: 1; the client uses the other core)")
    p.add_argument("--max-batch-size", type=int, default=64)
    p.add_argument("--max-wait-ms", type=float, default=2.0)
    p.add_argument("--compare", action="append", type=Path, default=[], metavar="DIR",
                   help="also serve this model folder (repeatable), e.g. an ONNX export of --model")
    p.add_argument("--export", choices=["int8", "fp32"], action="append", default=[],
                   help="export --model at this precision first (classiformer export, verified on probe texts) and "
                   "serve the export too (repeatable)")
    p.add_argument("--modes", default="off,on", help="micro-batching modes to run (default: off,on)")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "serve.json")
    args = p.parse_args()
    args.clients = [int(c) for c in args.clients.split(",")]
    modes = [m == "on" for m in args.modes.split(",")]
    sys.path.insert(0, str(ROOT / "src"))
    import torch

    torch.set_num_threads(args.threads)
    from hardware import header, machine

    print(header(), flush=True)
    train, test = ag_news_split(args.data_dir)
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(args.model) if args.model else train_model(train, Path(tmp) / "run", args.preset, args.epochs)
        from classiformer import Classifier

        labels = set(Classifier.load(model, device="cpu").labels)
        models = [model]
        for precision in args.export:
            from classiformer.export import export_model

            report = export_model(model, Path(tmp) / f"onnx_{precision}", precision)
            print(report.summary(), flush=True)
            models.append(Path(tmp) / f"onnx_{precision}")
        models += args.compare
        bodies = [json.dumps({"texts": [t]}).encode() for t in test.texts]
        rows: list[dict[str, Any]] = []
        for m in models:
            for batching in modes:
                print(f"{m}: server with batching {'on' if batching else 'off'}; load {os.getloadavg()[0]:.1f}", flush=True)
                rows += run_mode(m, batching, bodies, labels, args)

    def thr(mode: str, c: int, m: Path = models[0]) -> float:
        return next((r["throughput_rps"] for r in rows if r["batching"] == mode and r["clients"] == c
                     and r["model"] == str(m)), float("nan"))

    top = max(args.clients)
    speedup = thr("on", top) / thr("off", top)
    print()
    print(f"{'runtime':>11} {'batching':>8} {'clients':>7} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'texts/call':>10} "
          f"{'errors':>6} {'RSS MB ready / start -> end':>28}")
    for r in rows:
        print(f"{r['runtime']:>11} {r['batching']:>8} {r['clients']:>7} {r['throughput_rps']:>8.1f} {r['p50_ms']:>8.2f} "
              f"{r['p99_ms']:>8.2f} {r['texts_per_model_call']:>10.2f} {r['errors']:>6} {r['rss_ready_mb']:>8.1f} / "
              f"{r['rss_start_mb']:>6.1f} -> {r['rss_mb']:<7.1f}")
    if len(modes) == 2:
        print(f"\nthroughput at {top} clients, batching on / off: {speedup:.2f}x (target >= 3x)")
    comparisons = []
    for m in models[1:]:  # each other model against the first, at the top concurrency of the last mode
        mode = "on" if modes[-1] else "off"
        a = next(r for r in rows if r["model"] == str(models[0]) and r["clients"] == top and r["batching"] == mode)
        b = next(r for r in rows if r["model"] == str(m) and r["clients"] == top and r["batching"] == mode)
        c = {"model": str(m), "runtime": b["runtime"], "rss_ratio": b["rss_mb"] / a["rss_mb"],
             "throughput_ratio": b["throughput_rps"] / a["throughput_rps"]}
        comparisons.append(c)
        print(f"{m} ({b['runtime']}) against {models[0]} ({a['runtime']}), {top} clients, batching {mode}: "
              f"RSS {b['rss_mb']:.0f} / {a['rss_mb']:.0f} MB = {100 * c['rss_ratio']:.0f}% (target <= 50% for the int8 "
              f"export), throughput {b['throughput_rps']:.1f} / {a['throughput_rps']:.1f} req/s = x{c['throughput_ratio']:.2f}")
    result = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": machine(),
        "model": str(args.model) if args.model else f"{args.preset} preset, AG News split, {args.epochs} epoch(s)",
        "settings": {k: getattr(args, k) for k in ("clients", "duration", "max_requests", "threads", "max_batch_size", "max_wait_ms")},
        "rows": rows, "speedup_at_max_clients": round(speedup, 3), "comparisons": comparisons,
        "load_average_end": os.getloadavg()[0],
        "errors": sum(r["errors"] for r in rows),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")
    return 0 if result["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
