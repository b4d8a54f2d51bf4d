"""The daemon with ``tracing.endpoint`` set sends its traces over OTLP/HTTP to a
receiver of the test, which decodes them with OpenTelemetry's own protobuf classes;
a Nushell task sees the trace it can continue in ``TRACEPARENT``."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from tests.acceptance.conftest import Daemon
from tests.acceptance.workflow_helpers import run_and_wait
from tests.conftest import wait_for


class Receiver:
    """An OTLP/HTTP traces endpoint on a free loopback port, keeping every span."""

    def __init__(self) -> None:
        self.spans: list[Any] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                request = ExportTraceServiceRequest.FromString(body)
                with receiver.lock:
                    for resource in request.resource_spans:
                        for scope in resource.scope_spans:
                            receiver.spans.extend(scope.spans)
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *_: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1/traces"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def named(self, prefix: str) -> list[Any]:
        with self.lock:
            return [s for s in self.spans if s.name.startswith(prefix)]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    started = Receiver()
    yield started
    started.close()


def test_traces_reach_an_otlp_endpoint(make_daemon: Any, receiver: Receiver) -> None:
    daemon: Daemon = make_daemon()
    daemon.config.write_text(
        daemon.config.read_text() + f'[tracing]\nendpoint = "{receiver.url}"\n'
    )
    daemon.write_nu(
        "trace.nu",
        """
        export def show [params: record] {
            print $"RESULT: ($env.TRACEPARENT | to json -r)"
        }
        """,
    )
    daemon.start()
    found = run_and_wait(
        daemon,
        {
            "name": "traced",
            "operations": [
                {"id": "first", "run": {"command": ["true"]}},
                {
                    "id": "second",
                    "depends_on": ["first"],
                    "run": {"nushell": {"module": "trace.nu", "function": "show"}},
                },
            ],
        },
    )
    assert found["status"] == "completed", found
    daemon.stop()  # flushes what the batch processor still holds

    roots = wait_for(lambda: receiver.named("workflow traced"), message="the root span")
    assert len(roots) == 1
    trace_id = roots[0].trace_id
    steps = receiver.named("step ")
    assert sorted(s.name for s in steps) == ["step first", "step second"]
    assert all(s.trace_id == trace_id and s.parent_span_id == roots[0].span_id for s in steps)
    attempts = receiver.named("attempt ")
    assert len(attempts) == 2
    assert {a.trace_id for a in attempts} == {trace_id}

    (second,) = [s for s in found["steps"] if s["id"] == "second"]
    traceparent = second["tasks"][0]["result"]
    version, trace_hex, parent_hex, flags = traceparent.split("-")
    assert (version, flags) == ("00", "01")
    assert bytes.fromhex(trace_hex) == trace_id
    (nu_attempt,) = [a for a in attempts if a.name.endswith("traced/second")]
    assert bytes.fromhex(parent_hex) == nu_attempt.span_id
