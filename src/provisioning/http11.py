"""A small HTTP/1.1 client on a socket, for the CLI's calls to one orchestrator: JSON
requests on one kept-alive connection, and a line stream.

The CLI starts once per command, so what it imports is paid on every call: httpx
and its TLS context cost ~0.2 s before the first byte, and ``http.client`` pulls in
``email`` (its header parser) and ``ssl`` -- tens of milliseconds, more than the
requests themselves. This speaks just what the orchestrator answers: a status line,
headers, and a body sized by ``Content-Length``, sent chunked, or ending with the
connection. ``ssl`` is imported only for an ``https`` endpoint.
"""

from __future__ import annotations

import io
import json
import socket
import time
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlencode, urlsplit

# uvicorn closes a kept-alive connection after 5 s idle: one older than this is
# dialled again rather than risk a request (a submit) on a socket being closed.
IDLE_REDIAL_SECONDS = 2.0
# What an answer's head may hold: longer lines or more headers are not an orchestrator's.
MAX_LINE = 65_536
MAX_HEADERS = 100
# Methods whose request says "no body" with Content-Length: 0 when it has none.
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


class TransportError(Exception):
    """The request did not get an answer; the message says why."""


class ConnectFailed(TransportError):
    """Nothing accepted the connection."""


class ReadTimedOut(TransportError):
    """No answer within the timeout."""


class _Dropped(TransportError):
    """The server closed the connection before a byte of the answer (a kept-alive
    connection it has just let go)."""


class Response:
    __slots__ = ("body", "status")

    def __init__(self, status: int, body: bytes) -> None:
        self.status = status
        self.body = body

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return json.loads(self.body)


def _query(params: Mapping[str, Any] | None) -> str:
    if not params:
        return ""
    pairs = {k: ("true" if v is True else "false" if v is False else v) for k, v in params.items()}
    return "?" + urlencode(pairs)


class _Answer:
    """The head of one answer, and its body read from ``rfile``."""

    def __init__(self, rfile: io.BufferedReader, method: str) -> None:
        self._rfile = rfile
        first = rfile.readline(MAX_LINE + 1)
        if not first:
            raise _Dropped("the server closed the connection without answering")
        while True:
            version, status = _status_line(first)
            headers = _headers(rfile)
            if not 100 <= status < 200:
                break
            first = rfile.readline(MAX_LINE + 1)  # 1xx: the real answer follows
            if not first:
                raise TransportError("connection lost after an interim answer")
        self.status = status
        self._left: int | None = None
        self._chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        connection = headers.get("connection", "").lower()
        self.will_close = "close" in connection or (
            version == "HTTP/1.0" and "keep-alive" not in connection
        )
        if method == "HEAD" or status in (204, 304):
            self._left = 0
        elif not self._chunked:
            length = headers.get("content-length")
            if length is None:
                self.will_close = True  # the body ends with the connection
            else:
                try:
                    self._left = int(length)
                except ValueError:
                    raise TransportError(f"bad Content-Length {length!r}") from None
                if self._left < 0:
                    raise TransportError(f"bad Content-Length {length!r}")

    def pieces(self) -> Iterator[bytes]:
        """The body, a piece at a time as it arrives."""
        rfile = self._rfile
        if self._chunked:
            while True:
                size_line = rfile.readline(MAX_LINE + 1)
                if not size_line.endswith(b"\n"):
                    raise TransportError("connection lost inside a chunked body")
                try:
                    size = int(size_line.split(b";", 1)[0].strip(), 16)
                except ValueError:
                    raise TransportError("bad chunk size in the answer") from None
                if size == 0:
                    _headers(rfile)  # trailers, up to the blank line
                    return
                data = rfile.read(size)
                if len(data) < size or rfile.readline(MAX_LINE + 1) not in (b"\r\n", b"\n"):
                    raise TransportError("connection lost inside a chunked body")
                yield data
        elif self._left is None:
            while piece := rfile.read1(65_536):
                yield piece
        else:
            while self._left > 0:
                piece = rfile.read1(min(self._left, 65_536))
                if not piece:
                    raise TransportError(f"connection lost with {self._left} bytes to come")
                self._left -= len(piece)
                yield piece

    def read(self) -> bytes:
        return b"".join(self.pieces())


def _status_line(line: bytes) -> tuple[str, int]:
    parts = line.decode("latin-1").rstrip("\r\n").split(None, 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise TransportError(f"not an HTTP answer: {line[:80]!r}")
    return parts[0], int(parts[1])


def _headers(rfile: io.BufferedReader) -> dict[str, str]:
    """Header lines up to the blank one, names lower-cased (a repeated one: joined)."""
    found: dict[str, str] = {}
    for _ in range(MAX_HEADERS + 1):
        line = rfile.readline(MAX_LINE + 1)
        if len(line) > MAX_LINE:
            raise TransportError("an answer's header line is too long")
        if line in (b"\r\n", b"\n"):
            return found
        if not line:
            raise TransportError("connection lost inside the answer's headers")
        name, sep, value = line.decode("latin-1").partition(":")
        if sep:
            key = name.strip().lower()
            found[key] = f"{found[key]}, {value.strip()}" if key in found else value.strip()
    raise TransportError("too many headers in the answer")


class _Connection:
    """One socket and its buffered reader."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.rfile: io.BufferedReader = sock.makefile("rb")

    def close(self) -> None:
        self.rfile.close()
        self.sock.close()


class Http11:
    """Requests to one endpoint (``http://host:port`` or ``https://…``)."""

    def __init__(self, endpoint: str, headers: Mapping[str, str], timeout: float) -> None:
        parts = urlsplit(endpoint)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) endpoint: {endpoint!r}")
        self._secure = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port or (443 if self._secure else 80)
        self._prefix = parts.path.rstrip("/")
        host = f"[{self._host}]" if ":" in self._host else self._host
        default_port = 443 if self._secure else 80
        self._headers = {
            "Host": host if self._port == default_port else f"{host}:{self._port}",
            "Accept": "application/json",
            "Accept-Encoding": "identity",
            **headers,
        }
        self.timeout = timeout
        self._conn: _Connection | None = None
        self._used_at = 0.0

    def _dial(self, timeout: float | None) -> _Connection:
        try:
            sock = socket.create_connection((self._host, self._port), timeout=timeout)
        except TimeoutError:
            raise ReadTimedOut("connecting timed out") from None
        except OSError as exc:
            raise ConnectFailed(str(exc)) from None
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._secure:
                import ssl

                context = ssl.create_default_context()
                sock = context.wrap_socket(sock, server_hostname=self._host)
        except TimeoutError:
            sock.close()
            raise ReadTimedOut("the TLS handshake timed out") from None
        except OSError as exc:
            sock.close()
            raise ConnectFailed(str(exc)) from None
        return _Connection(sock)

    def _connection(self) -> _Connection:
        if self._conn is not None and time.monotonic() - self._used_at > IDLE_REDIAL_SECONDS:
            self.close()
        if self._conn is None:
            self._conn = self._dial(self.timeout)
        return self._conn

    def _head(self, method: str, target: str, body: bytes | None) -> bytes:
        lines = [f"{method} {target} HTTP/1.1"]
        lines += [f"{name}: {value}" for name, value in self._headers.items()]
        if body is not None:
            lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
        elif method in _BODY_METHODS:
            lines.append("Content-Length: 0")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def _target(self, path: str, params: Mapping[str, Any] | None) -> str:
        return self._prefix + path + _query(params)

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
    ) -> Response:
        body = None if json_body is None else json.dumps(json_body).encode()
        message = self._head(method, self._target(path, params), body) + (body or b"")
        # A kept-alive connection the server has just closed fails before any answer:
        # one fresh connection then, and only for a request that is safe to repeat.
        attempts = 2 if method == "GET" and self._conn is not None else 1
        for attempt in range(attempts):
            conn = self._connection()
            try:
                conn.sock.sendall(message)
                answer = _Answer(conn.rfile, method)
                data = answer.read()
                self._used_at = time.monotonic()
                if answer.will_close:
                    self.close()
                return Response(answer.status, data)
            except TimeoutError:
                self.close()
                raise ReadTimedOut("no answer in time") from None
            except (_Dropped, ConnectionResetError, BrokenPipeError) as exc:
                self.close()
                if attempt + 1 == attempts:
                    raise TransportError(f"connection lost: {exc}") from None
            except TransportError:
                self.close()
                raise
            except OSError as exc:
                self.close()
                raise TransportError(str(exc) or type(exc).__name__) from None
        raise AssertionError("unreachable")

    def lines(self, path: str, params: Mapping[str, Any] | None = None) -> Iterator[str | int]:
        """The status code, then the body's lines as they come (no read timeout), on a
        connection of their own: requests may go on beside the stream."""
        conn = self._dial(None)
        try:
            conn.sock.sendall(self._head("GET", self._target(path, params), None))
            answer = _Answer(conn.rfile, "GET")
            yield answer.status
            if answer.status >= 400:
                return
            pending = b""
            for piece in answer.pieces():
                pending += piece
                *complete, pending = pending.split(b"\n")
                for raw in complete:
                    yield raw.decode("utf-8", errors="replace").rstrip("\r")
            if pending:
                yield pending.decode("utf-8", errors="replace").rstrip("\r")
        except OSError as exc:
            if isinstance(exc, ConnectionRefusedError):
                raise ConnectFailed(str(exc)) from None
            raise TransportError(str(exc) or type(exc).__name__) from None
        finally:
            conn.close()

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
