"""Bounds on what a client can hold of the daemon: connections and read time.

uvicorn has no deadline for reading a request (a client may send one header
byte a minute forever) and no cap on open connections, so a few thousand slow
clients use up the file descriptors and ``/health`` stops answering. This
protocol adds both: a connection over the cap is answered ``503`` and closed at
once, and a request whose headers (or body) do not arrive in time is dropped.
Accept errors (``EMFILE`` and the like) are logged once per interval, without
a traceback each, instead of once per attempt.
"""

from __future__ import annotations

import asyncio
import logging
import resource
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .ratelog import RateLimitedLog

log = logging.getLogger("provisioning.orchestrator.http")

_BUSY_BODY = b'{"error":"too many connections to this orchestrator; retry shortly"}'
_BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
    b"retry-after: 1\r\nconnection: close\r\ncontent-length: %d\r\n\r\n%s"
) % (len(_BUSY_BODY), _BUSY_BODY)


class GuardedHttp(HttpToolsProtocol):
    """uvicorn's httptools protocol with a connection cap and request read deadlines.

    The limits are class attributes, set once by :func:`guarded_protocol`.
    """

    max_connections = 1024
    header_timeout = 10.0
    body_timeout = 30.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._refused = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        if len(self.connections) >= self.max_connections:
            self._refused = True
            transport.write(_BUSY)
            transport.close()
            _refusals.note()
            return
        super().connection_made(transport)
        self._arm(self.header_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if not self._refused:
            super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm(self.header_timeout)

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        self._arm(self.body_timeout)

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def handle_websocket_upgrade(self) -> None:
        self._disarm()
        super().handle_websocket_upgrade()

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._too_slow)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_slow(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            _slow.note()
            self.transport.close()


_refusals = RateLimitedLog(log, "connections refused: over server.max_connections")
_slow = RateLimitedLog(log, "connections dropped: request not read within its deadline")
_accept = RateLimitedLog(log, "accepting connections failed")


def guarded_protocol(
    max_connections: int, header_timeout: float, body_timeout: float
) -> type[GuardedHttp]:
    """The protocol class for ``uvicorn.Config(http=...)`` with these limits."""
    return type(
        "GuardedHttp",
        (GuardedHttp,),
        {
            "max_connections": max_connections,
            "header_timeout": header_timeout,
            "body_timeout": body_timeout,
        },
    )


def quiet_accept_errors(loop: asyncio.AbstractEventLoop) -> None:
    """Log accept failures (out of file descriptors, ...) once per interval, one line
    each; everything else goes to the default handler as before."""

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        message = str(context.get("message", ""))
        if message.startswith("socket.accept()"):
            error = context.get("exception")
            _accept.note(f"{message}: {error}" if error else message)
            return
        loop.default_exception_handler(context)

    loop.set_exception_handler(handler)


def raise_file_limit() -> int:
    """Raise the soft limit on open files to the hard one (as daemons do); return it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = max(soft, 1 << 20)
    if soft != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    return int(soft)
