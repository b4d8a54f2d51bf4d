"""A small HTTP/1.1 client on the standard library, for the CLI's calls to one
orchestrator: JSON requests on one kept-alive connection, and a line stream.

The CLI starts once per command, so what it imports is paid on every call: httpx
and its TLS context cost ~0.2 s before the first byte; ``http.client`` costs a few
milliseconds, and TLS is set up only for an ``https`` endpoint.
"""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

# uvicorn closes a kept-alive connection after 5 s idle: one older than this is
# dialled again rather than risk a request (a submit) on a socket being closed.
IDLE_REDIAL_SECONDS = 2.0


class TransportError(Exception):
    """The request did not get an answer; the message says why."""


class ConnectFailed(TransportError):
    """Nothing accepted the connection."""


class ReadTimedOut(TransportError):
    """No answer within the timeout."""


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes

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
        self._headers = {"Accept": "application/json", **headers}
        self.timeout = timeout
        self._conn: http.client.HTTPConnection | None = None
        self._used_at = 0.0

    def _dial(self, timeout: float | None) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection
        if self._secure:
            import ssl

            conn = http.client.HTTPSConnection(
                self._host, self._port, timeout=timeout, context=ssl.create_default_context()
            )
        else:
            conn = http.client.HTTPConnection(self._host, self._port, timeout=timeout)
        try:
            conn.connect()
        except OSError as exc:
            conn.close()
            if isinstance(exc, TimeoutError):
                raise ReadTimedOut("connecting timed out") from None
            raise ConnectFailed(str(exc)) from None
        return conn

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is not None and time.monotonic() - self._used_at > IDLE_REDIAL_SECONDS:
            self.close()
        if self._conn is None:
            self._conn = self._dial(self.timeout)
        return self._conn

    def _send(
        self, method: str, path: str, params: Mapping[str, Any] | None, body: bytes | None
    ) -> http.client.HTTPResponse:
        headers = dict(self._headers)
        if body is not None:
            headers["Content-Type"] = "application/json"
        conn = self._connection()
        conn.request(method, self._prefix + path + _query(params), body=body, headers=headers)
        return conn.getresponse()

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
    ) -> Response:
        body = None if json_body is None else json.dumps(json_body).encode()
        # A kept-alive connection the server has just closed fails before any answer:
        # one fresh connection then, and only for a request that is safe to repeat.
        attempts = 2 if method == "GET" and self._conn is not None else 1
        for attempt in range(attempts):
            try:
                response = self._send(method, path, params, body)
                data = response.read()
                self._used_at = time.monotonic()
                if response.will_close:
                    self.close()
                return Response(response.status, data)
            except TimeoutError:
                self.close()
                raise ReadTimedOut("no answer in time") from None
            except TransportError:
                raise
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as exc:
                self.close()
                if attempt + 1 == attempts:
                    raise TransportError(f"connection lost: {exc}") from None
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                raise TransportError(str(exc) or type(exc).__name__) from None
        raise AssertionError("unreachable")

    def lines(self, path: str, params: Mapping[str, Any] | None = None) -> Iterator[str | int]:
        """The status code, then the body's lines as they come (no read timeout), on a
        connection of their own: requests may go on beside the stream."""
        conn = self._dial(None)
        try:
            conn.request("GET", self._prefix + path + _query(params), headers=self._headers)
            response = conn.getresponse()
            yield response.status
            if response.status >= 400:
                return
            while raw := response.readline():
                yield raw.decode("utf-8", errors="replace").rstrip("\r\n")
        except (OSError, http.client.HTTPException) as exc:
            if isinstance(exc, ConnectionRefusedError):
                raise ConnectFailed(str(exc)) from None
            raise TransportError(str(exc) or type(exc).__name__) from None
        finally:
            conn.close()

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
