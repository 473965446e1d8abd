"""How uvicorn serves the app: timeouts and a connection limit against slow or idle clients.

uvicorn closes an idle keep-alive connection after a response, but never times out a connection
that sends nothing, or a request whose headers trickle in a byte at a time ("slowloris"), so each
one holds a socket and a slot for as long as the client likes. Here a client has
``read_timeout_s`` to send a request's headers (counted from the connection's start or the previous
response, in total, so trickling does not extend it); ``middleware.BodySizeLimit`` gives it the
same again for the body. Beyond ``max_connections`` open connections, uvicorn answers 503. The
defences Apache's mod_reqtimeout and nginx's client_header_timeout/client_body_timeout apply.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from .settings import ServerSettings

log = logging.getLogger(__name__)


def timed_h11(read_timeout_s: float) -> type[H11Protocol]:
    """uvicorn's h11 protocol, closing a connection whose next request's headers are late."""

    class TimedH11Protocol(H11Protocol):
        _headers_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._await_headers()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._await_headers()  # the next request on this connection gets the same time

        def connection_lost(self, exc: Exception | None) -> None:
            self._stop_timer()
            super().connection_lost(exc)

        def _await_headers(self) -> None:
            self._stop_timer()
            self._headers_timer = self.loop.call_later(read_timeout_s, self._headers_late)

        def _stop_timer(self) -> None:
            if self._headers_timer is not None:
                self._headers_timer.cancel()
                self._headers_timer = None

        def _headers_late(self) -> None:
            self._headers_timer = None
            waiting = self.cycle is None or self.cycle.response_complete  # no request under way
            if waiting and not self.transport.is_closing():
                # No response: h11 cannot answer a request it has not seen; closing is the answer.
                log.debug("closing %s: no complete request headers within %s s", self.client, read_timeout_s)
                self.transport.close()

    return TimedH11Protocol


def uvicorn_config(app: Any, host: str, port: int, settings: ServerSettings, **options: Any) -> uvicorn.Config:
    """The uvicorn configuration ``classiformer serve`` runs ``app`` with (``options`` go to
    ``uvicorn.Config`` as they are)."""
    return uvicorn.Config(
        app, host=host, port=port,
        http=timed_h11(settings.read_timeout_s),
        timeout_keep_alive=settings.keep_alive_timeout_s,
        # uvicorn counts the connection asking, too: max_connections may be open, the next gets 503.
        limit_concurrency=settings.max_connections + 1,
        **options,
    )
