"""classiformer serve: an HTTP API (and a web page) for a trained model."""

from __future__ import annotations

import argparse
import os

from .runtime_options import add_runtime_options, apply_runtime


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="serve a model over HTTP (API, OpenAPI docs and a web page)",
        description="Serve a trained model: POST /v1/predict, POST /v1/explain, GET /v1/model, /healthz, /readyz, "
        "OpenAPI docs at /docs and a page to try the model at /. Concurrent requests are micro-batched. "
        "Binds to loopback unless told otherwise; binding beyond loopback needs an API key.",
        epilog="example: classiformer serve runs/ag_news_lesson --port 8000",
    )
    p.add_argument("model", help="run folder or checkpoint folder")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    g = p.add_argument_group("batching")
    g.add_argument("--no-batching", action="store_true", help="run every request on its own")
    g.add_argument("--max-batch-size", type=int, default=64, help="most texts per model call (default: 64)")
    g.add_argument("--max-wait-ms", type=float, default=5.0, help="longest a request waits for others to join its batch (default: 5)")
    g = p.add_argument_group("limits and access")
    g.add_argument("--max-texts", type=int, default=64, help="most texts per request (default: 64)")
    g.add_argument("--max-chars", type=int, default=10_000, help="most characters per text (default: 10000)")
    g.add_argument("--max-body-bytes", type=int, default=1_000_000, help="largest request body (default: 1000000)")
    g.add_argument("--timeout", type=float, default=30.0, help="request timeout in seconds (default: 30)")
    g.add_argument("--api-key", default=os.environ.get("CLASSIFORMER_API_KEY"),
                   help="require this key in the X-API-Key header (default: $CLASSIFORMER_API_KEY); "
                   "required when --host is not loopback")
    g.add_argument("--cors-origin", action="append", default=[], metavar="ORIGIN",
                   help="allow browser pages from ORIGIN to call the API (repeat; default: CORS off)")
    g = p.add_argument_group("connections (against slow or idle clients)")
    g.add_argument("--read-timeout", type=float, default=10.0, metavar="SECONDS",
                   help="a client has this long to send a request's headers, and again its body; "
                   "slower connections are closed (default: 10)")
    g.add_argument("--keep-alive-timeout", type=int, default=5, metavar="SECONDS",
                   help="close a connection idle this long after a response (default: 5)")
    g.add_argument("--max-connections", type=int, default=1000, metavar="N",
                   help="most open connections; requests beyond it are answered 503 (default: 1000)")
    g.add_argument("--graceful-timeout", type=float, default=30.0,
                   help="on SIGTERM, seconds to let in-flight requests finish (default: 30)")
    add_runtime_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from ..server import ServerSettings, check_bind, create_app
        from ..server.connections import uvicorn_config
    except ImportError as e:
        raise ValueError(f"classiformer serve needs FastAPI and uvicorn: pip install 'classiformer[serve]' ({e})") from e
    from ..checkpoint import ONNXRUNTIME, read_meta
    from ..predict import resolve_model_path

    settings = ServerSettings(
        batching=not args.no_batching, max_batch_size=args.max_batch_size, max_wait_ms=args.max_wait_ms,
        max_texts=args.max_texts, max_chars=args.max_chars, max_body_bytes=args.max_body_bytes,
        request_timeout_s=args.timeout, read_timeout_s=args.read_timeout, keep_alive_timeout_s=args.keep_alive_timeout,
        max_connections=args.max_connections, api_key=args.api_key or None, cors_origins=args.cors_origin,
        device=None if args.device == "auto" else args.device,
    )
    check_bind(args.host, settings)
    folder = resolve_model_path(args.model)  # a clear error now rather than a failed start-up later
    apply_runtime(args, pytorch=read_meta(folder).runtime != ONNXRUNTIME)
    app = create_app(args.model, settings)
    server = uvicorn.Server(uvicorn_config(
        app, args.host, args.port, settings, timeout_graceful_shutdown=args.graceful_timeout,
        log_level="debug" if args.verbose else "info", access_log=args.verbose,
    ))
    server.run()
    if not server.started:  # e.g. the port is taken: uvicorn has logged why
        return 3
    return 0
