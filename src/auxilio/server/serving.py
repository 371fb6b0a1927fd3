"""How ``auxilio serve`` runs uvicorn: connection timeouts, so idle or slow peers cannot pile up.

- A request's headers must be complete within ``http_header_timeout_seconds`` of its first byte
  (and a new connection must send them within that time of opening). uvicorn has no such timeout
  of its own, so a client that opens connections and trickles header bytes ("slowloris") would
  hold each one forever; the protocol below closes them.
- An idle keep-alive connection is closed after ``http_keep_alive_seconds`` (uvicorn's
  ``timeout_keep_alive``).
- A request body that stops arriving for ``http_body_idle_seconds`` is answered 408
  ``request_timeout`` (the request middleware, server/middleware.py).
- WebSockets are pinged every ``ws_ping_interval_seconds``; one whose pong does not come back
  within ``ws_ping_timeout_seconds`` is closed. The first message (``agent.auth`` /
  ``tech.attach``) must arrive within ``ws_auth_timeout_seconds`` (support_sessions/ws.py).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from auxilio.server.settings import Settings

log = logging.getLogger("auxilio.http")


def header_timeout_protocol(seconds: float) -> type[asyncio.Protocol]:
    """uvicorn's httptools protocol, closing a connection whose request headers are late."""

    class HeaderTimeoutProtocol(HttpToolsProtocol):
        _header_timer: asyncio.TimerHandle | None = None

        def _arm(self) -> None:
            if self._header_timer is None:
                self._header_timer = self.loop.call_later(seconds, self._headers_late)

        def _disarm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _headers_late(self) -> None:
            self._header_timer = None
            log.info(
                "closing a connection whose request headers took over %gs",
                seconds,
                extra={"client": self.client},
            )
            self.transport.close()

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)  # type: ignore[arg-type]  # uvicorn narrows it
            self._arm()

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._arm()

        def on_headers_complete(self) -> None:
            self._disarm()
            super().on_headers_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

    return HeaderTimeoutProtocol


def connection_options(settings: Settings) -> dict[str, Any]:
    """The uvicorn options that bound how long a connection may be idle or slow."""
    return {
        "http": header_timeout_protocol(settings.http_header_timeout_seconds),
        "timeout_keep_alive": settings.http_keep_alive_seconds,
        "ws_ping_interval": settings.ws_ping_interval_seconds,
        "ws_ping_timeout": settings.ws_ping_timeout_seconds,
    }
