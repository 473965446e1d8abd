"""Server settings: batching, limits and access, as one typed dataclass."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from ..config import ConfigError, require_positive


@dataclass
class ServerSettings:
    """How the HTTP service batches, limits and guards requests.

    batching: gather concurrent requests into one model call of at most ``max_batch_size`` texts,
    waiting at most ``max_wait_ms`` for company after the first request arrives. Off, every request
    runs on its own (one at a time, as the model runs on one worker thread either way).

    Connections (the slowloris defence, with the server's own header-size limit): a client has
    ``read_timeout_s`` to send a request's headers, and again to send its body; an idle keep-alive
    connection is closed after ``keep_alive_timeout_s``; beyond ``max_connections`` open connections
    new requests are answered 503.
    """

    batching: bool = True
    max_batch_size: int = 64
    max_wait_ms: float = 5.0
    max_texts: int = 64
    max_chars: int = 10_000
    max_body_bytes: int = 1_000_000
    max_queue: int = 4096
    request_timeout_s: float = 30.0
    read_timeout_s: float = 10.0
    keep_alive_timeout_s: int = 5
    max_connections: int = 1000
    api_key: str | None = None
    cors_origins: list[str] = field(default_factory=list)
    device: str | None = None
    inference_batch_size: int = 256

    def __post_init__(self) -> None:
        require_positive(
            self, ("max_batch_size", "max_texts", "max_chars", "max_body_bytes", "max_queue", "inference_batch_size",
             "keep_alive_timeout_s", "max_connections"),
            "server setting ",
        )
        if self.max_wait_ms < 0:
            raise ConfigError(f"server setting max_wait_ms must not be negative, got {self.max_wait_ms}")
        for name in ("request_timeout_s", "read_timeout_s"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"server setting {name} must be positive, got {getattr(self, name)}")
        if self.api_key is not None and not self.api_key.strip():
            raise ConfigError("server setting api_key must not be empty (leave it unset to serve without a key)")

    def limits(self) -> dict[str, float | int]:
        """The limits a client should know about (also reported by ``GET /v1/model``): counts are
        ints, durations in seconds are floats."""
        return {
            "max_texts": int(self.max_texts),
            "max_chars": int(self.max_chars),
            "max_body_bytes": int(self.max_body_bytes),
            "request_timeout_s": float(self.request_timeout_s),
            "read_timeout_s": float(self.read_timeout_s),
        }


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, settings: ServerSettings) -> None:
    """Refuse to listen beyond loopback without an API key."""
    if not is_loopback(host) and not settings.api_key:
        raise ConfigError(
            f"binding to {host} exposes the model beyond this machine: set an API key "
            "(--api-key or CLASSIFORMER_API_KEY), or bind to 127.0.0.1"
        )
