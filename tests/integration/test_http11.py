"""The CLI's HTTP client (``http11`` under ``OrchestratorClient``) against real loopback
servers: kept-alive connections, a server that drops them, bodies that are not JSON,
nothing listening, no answer in time, and a line stream beside requests."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from provisioning.client import ClientError, OrchestratorClient, TimedOut, Unreachable


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    connections: ClassVar[list[int]] = []

    def log_message(self, *args: object) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        self.connections.append(id(self.connection))

    def _reply(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path.startswith("/health"):
            self._reply(200, json.dumps({"path": self.path}).encode())
        elif self.path == "/drop":
            self.close_connection = True
            self._reply(200, b'{"dropped": true}')
        elif self.path == "/html":
            self._reply(502, b"<html>bad gateway</html>", "text/html")
        elif self.path == "/plain":
            self._reply(200, b"not json")
        elif self.path.startswith("/events"):
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            for n in range(3):
                self.wfile.write(f'data: {{"n": {n}}}\n\n'.encode())
                self.wfile.flush()
            self.close_connection = True
        else:
            self._reply(404, b'{"error": "no such thing"}')

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        body = json.loads(self.rfile.read(length))
        self._reply(201, json.dumps({"task_id": body["name"]}).encode())


@pytest.fixture()
def server() -> Iterator[str]:
    _Handler.connections = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


@pytest.fixture()
def client(server: str) -> Iterator[OrchestratorClient]:
    made = OrchestratorClient(server, "t0ken", 5)
    try:
        yield made
    finally:
        made.close()


def test_requests_share_one_kept_alive_connection(client: OrchestratorClient) -> None:
    assert client.health() == {"path": "/health"}
    assert client.submit_task({"name": "one"}) == "one"
    assert client.health() == {"path": "/health"}
    assert len(_Handler.connections) == 1


def test_a_connection_the_server_closed_is_dialled_again(client: OrchestratorClient) -> None:
    assert client._request("GET", "/drop") == {"dropped": True}
    assert client.health() == {"path": "/health"}
    assert len(_Handler.connections) == 2


def test_answers_that_are_not_json_are_clear_errors(client: OrchestratorClient) -> None:
    with pytest.raises(ClientError, match=r"bad gateway.*\(HTTP 502\)") as refused:
        client._request("GET", "/html")
    assert refused.value.status == 502
    with pytest.raises(ClientError, match="not JSON"):
        client._request("GET", "/plain")
    with pytest.raises(ClientError, match=r"no such thing \(HTTP 404\)"):
        client._request("GET", "/nothing")


def test_nothing_listening_is_unreachable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = OrchestratorClient(f"http://127.0.0.1:{port}", None, 5)
    with pytest.raises(Unreachable, match=f"127.0.0.1:{port}"):
        client.health()


def test_a_server_that_never_answers_times_out() -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)  # accepted by the kernel, never answered
        client = OrchestratorClient(f"http://127.0.0.1:{silent.getsockname()[1]}", None, 0.3)
        with pytest.raises(TimedOut, match="did not answer in time"):
            client.health()


def test_the_event_stream_runs_beside_requests(client: OrchestratorClient) -> None:
    stream = client.events()
    assert next(stream) == {"type": "system", "event": "connected"}
    assert next(stream) == {"n": 0}
    assert client.health() == {"path": "/health"}
    assert [event["n"] for event in stream] == [1, 2]


def test_an_endpoint_that_is_not_http_is_refused() -> None:
    with pytest.raises(ClientError, match=r"orchestrator\.endpoint: not an http"):
        OrchestratorClient("ftp://127.0.0.1:21", None, 5)


# -- the wire itself: a server that answers each connection with scripted bytes ---------------


@pytest.fixture()
def scripted() -> Iterator[tuple[str, list[bytes], list[bytes]]]:
    """An endpoint whose connections each get the next of ``answers`` (raw bytes) and then
    are closed; what each received is appended to ``received``."""
    answers: list[bytes] = []
    received: list[bytes] = []
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.05)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(5)
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    piece = conn.recv(65536)
                    if not piece:
                        break
                    data += piece
                head, _, rest = data.partition(b"\r\n\r\n")
                length = next(
                    (
                        int(line.split(b":", 1)[1])
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length:")
                    ),
                    0,
                )
                while len(rest) < length:
                    rest += conn.recv(65536)
                received.append(head + b"\r\n\r\n" + rest)
                if answers:
                    conn.sendall(answers.pop(0))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}", answers, received
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()


def test_chunked_answers_with_extensions_and_trailers(
    scripted: tuple[str, list[bytes], list[bytes]],
) -> None:
    url, answers, _ = scripted
    answers.append(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
        b'4;ext=1\r\n{"a"\r\n'
        b"5\r\n: 1, \r\n"
        b'7\r\n"b": 2}\r\n'
        b"0\r\nX-Trailer: yes\r\n\r\n"
    )
    client = OrchestratorClient(url, None, 5)
    try:
        assert client.health() == {"a": 1, "b": 2}
    finally:
        client.close()


def test_an_interim_answer_is_skipped_and_a_body_may_end_with_the_connection(
    scripted: tuple[str, list[bytes], list[bytes]],
) -> None:
    url, answers, _ = scripted
    answers.append(b'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.0 200 OK\r\n\r\n{"old": true}')
    answers.append(b'HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n{"n": 2}')
    client = OrchestratorClient(url, None, 5)
    try:
        assert client.health() == {"old": True}
        with pytest.raises(ClientError, match="connection lost with 3 bytes to come"):
            client.health()
    finally:
        client.close()


def test_what_is_sent(scripted: tuple[str, list[bytes], list[bytes]]) -> None:
    url, answers, received = scripted
    answers += [b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}"] * 2
    client = OrchestratorClient(url + "/api/", "t0ken", 5)
    try:
        client.workflow_command("abc/../x", "cancel")
        client.tasks(status="failed", limit=5)
    finally:
        client.close()
    post, get = received
    assert post.startswith(b"POST /api/workflows/abc%2F..%2Fx/cancel HTTP/1.1\r\n")
    assert b"\r\nContent-Length: 0\r\n" in post
    assert b"\r\nAuthorization: Bearer t0ken\r\n" in post
    assert f"\r\nHost: {url.removeprefix('http://')}\r\n".encode() in post
    assert get.startswith(b"GET /api/tasks?limit=5&offset=0&status=failed HTTP/1.1\r\n")
    assert b"Content-Length" not in get


def test_a_post_is_never_sent_twice(scripted: tuple[str, list[bytes], list[bytes]]) -> None:
    """A submit on a connection the server dropped fails; it is not repeated blindly."""
    url, answers, received = scripted
    answers.append(b'HTTP/1.1 200 OK\r\nContent-Length: 14\r\n\r\n{"task_id": 1}')
    client = OrchestratorClient(url, None, 5)
    try:
        assert client.health() == {"task_id": 1}  # kept alive; the server then hangs up
        with pytest.raises(ClientError, match="connection lost"):
            client.submit_task({"name": "x"})
    finally:
        client.close()
    assert len(received) == 1


def test_a_chunked_event_stream(scripted: tuple[str, list[bytes], list[bytes]]) -> None:
    url, answers, _ = scripted
    answers.append(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b'a\r\ndata: {"n"\r\n'
        b"a\r\n: 0}\n\ndata\r\n"
        b'b\r\n: {"n": 1}\n\r\n'
        b"0\r\n\r\n"
    )
    client = OrchestratorClient(url, None, 5)
    try:
        assert list(client.events()) == [
            {"type": "system", "event": "connected"},
            {"n": 0},
            {"n": 1},
        ]
    finally:
        client.close()
