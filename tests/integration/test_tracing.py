"""Traces of real workflows on a real orchestrator node (SQLite, real processes),
caught by the OpenTelemetry SDK's in-memory exporter."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from provisioning.config import Settings
from provisioning.config.models import ExecutorSection, StorageSection
from provisioning.orchestrator import tracing
from provisioning.orchestrator.service import OrchestratorService
from provisioning.orchestrator.store import open_store

# A Python task that continues the trace it is handed: its own span, with the SDK,
# under the attempt's span; it reports that span's ids as its result.
CONTINUE_TRACE = """
import json, os
from opentelemetry.propagate import extract
from opentelemetry.sdk.trace import TracerProvider
provider = TracerProvider()
with provider.get_tracer("handler").start_as_current_span(
    "handler work", context=extract({"traceparent": os.environ["TRACEPARENT"]})
) as span:
    ctx = span.get_span_context()
    print("RESULT: " + json.dumps({"trace_id": f"{ctx.trace_id:032x}",
                                   "parent": f"{span.parent.span_id:016x}"}))
"""


def _workflow(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "operations": [
            {"id": "prepare", "run": {"command": ["true"]}},
            {
                "id": "deploy",
                "depends_on": ["prepare"],
                "run": {"command": [sys.executable, "-c", CONTINUE_TRACE]},
            },
            {"id": "check", "depends_on": ["prepare"], "run": {"command": ["true"]}},
        ],
    }


async def _run(settings: Settings, bodies: list[dict[str, Any]]) -> list[tuple[Any, Any, Any]]:
    store = open_store(settings)
    service = OrchestratorService(settings, store, "t" * 32)
    await service.start()
    try:
        ids = [(await service.submit_workflow(body)).id for body in bodies]
        deadline = time.monotonic() + 60
        found: list[tuple[Any, Any, Any]] = []
        while time.monotonic() < deadline:
            found = [await service.workflow(wf_id) for wf_id in ids]  # type: ignore[misc]
            if all(f[0].status.finished for f in found):
                break
            await asyncio.sleep(0.05)
        assert all(f[0].status.finished for f in found), found
        return found
    finally:
        await service.stop()


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    memory = InMemorySpanExporter()
    tracing.use_exporter(memory)
    yield memory
    tracing.shutdown()


def _settings(tmp_path: Path) -> Settings:
    return Settings(
        storage=StorageSection(data_dir=str(tmp_path / "data")),
        executor=ExecutorSection(kill_grace_seconds=1),
    )


def _hex(span: ReadableSpan) -> tuple[str, str, str | None]:
    ctx = span.get_span_context()
    assert ctx is not None
    parent = f"{span.parent.span_id:016x}" if span.parent is not None else None
    return f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}", parent


def test_one_trace_per_workflow_with_a_span_per_step_and_attempt(
    tmp_path: Path, exporter: InMemorySpanExporter
) -> None:
    found = asyncio.run(_run(_settings(tmp_path), [_workflow("alpha"), _workflow("beta")]))
    assert [f[0].status.value for f in found] == ["completed", "completed"]

    spans = exporter.get_finished_spans()
    by_workflow: dict[str, list[ReadableSpan]] = {}
    for span in spans:
        assert span.attributes is not None
        by_workflow.setdefault(str(span.attributes["provisioning.workflow.id"]), []).append(span)
    assert set(by_workflow) == {f[0].id for f in found}

    traces = set()
    for workflow, _, tasks in found:
        mine = by_workflow[workflow.id]
        trace_ids = {_hex(s)[0] for s in mine}
        assert len(trace_ids) == 1, "one workflow, one trace"
        traces |= trace_ids
        roots = [s for s in mine if s.parent is None]
        assert [r.name for r in roots] == [f"workflow {workflow.name}"]
        root_id = _hex(roots[0])[1]
        step_spans = {s.name: s for s in mine if s.name.startswith("step ")}
        assert sorted(step_spans) == ["step check", "step deploy", "step prepare"]
        assert all(_hex(s)[2] == root_id for s in step_spans.values())
        attempts = [s for s in mine if s.name.startswith("attempt ")]
        assert len(attempts) == len(tasks) == 3
        for span in attempts:
            assert span.attributes is not None
            step = step_spans[f"step {span.attributes['provisioning.step.id']}"]
            assert _hex(span)[2] == _hex(step)[1], "an attempt's parent is its step"
            assert span.start_time is not None and step.start_time is not None
            assert step.start_time <= span.start_time

        # The handler continued the trace under its attempt's span.
        deploy = next(t for t in tasks if t.step_id == "deploy")
        deploy_attempt = next(
            s
            for s in attempts
            if s.attributes is not None and s.attributes["provisioning.step.id"] == "deploy"
        )
        assert deploy.result == {
            "trace_id": _hex(deploy_attempt)[0],
            "parent": _hex(deploy_attempt)[1],
        }
    assert len(traces) == 2, "two workflows, two traces"


def test_a_failed_step_marks_its_spans_as_errors(
    tmp_path: Path, exporter: InMemorySpanExporter
) -> None:
    body = {
        "name": "broken",
        "retry": {"max_attempts": 2, "initial_delay": 0},
        "operations": [{"id": "boom", "run": {"command": ["sh", "-c", "echo no >&2; exit 3"]}}],
    }
    ((workflow, _, _),) = asyncio.run(_run(_settings(tmp_path), [body]))
    assert workflow.status.value == "failed"

    spans = exporter.get_finished_spans()
    attempts = [s for s in spans if s.name.startswith("attempt ")]
    assert len(attempts) == 2, "each try is a span"
    assert all(s.status.status_code.name == "ERROR" for s in attempts)
    assert all(
        s.attributes is not None and s.attributes["process.exit.code"] == 3 for s in attempts
    )
    step = next(s for s in spans if s.name == "step boom")
    assert step.status.status_code.name == "ERROR"


def test_without_tracing_no_traceparent_reaches_the_task(tmp_path: Path) -> None:
    tracing.shutdown()
    body = {
        "name": "plain",
        "operations": [
            {
                "id": "env",
                "run": {
                    "command": [
                        sys.executable,
                        "-c",
                        "import json, os; print('RESULT: ' + json.dumps(os.environ.get('TRACEPARENT')))",
                    ]
                },
            }
        ],
    }
    ((workflow, _, tasks),) = asyncio.run(_run(_settings(tmp_path), [body]))
    assert workflow.status.value == "completed"
    assert tasks[0].result is None
    assert not tracing.enabled()


def test_the_orchestrator_runs_without_opentelemetry_installed(tmp_path: Path) -> None:
    """``tracing`` is an optional extra: with OpenTelemetry unimportable, a node with
    ``tracing.endpoint`` set still starts, runs a workflow (untraced) and says why."""
    script = """
import sys
for name in ("opentelemetry", "opentelemetry.trace", "opentelemetry.sdk"):
    sys.modules[name] = None  # import fails as if not installed
import logging
logging.basicConfig(level=logging.WARNING, stream=sys.stdout)
from provisioning.config import Settings
from provisioning.config.models import StorageSection, TracingSection
from provisioning.orchestrator import tracing
assert not tracing.AVAILABLE
settings = Settings(storage=StorageSection(data_dir=DATA_DIR),
                    tracing=TracingSection(endpoint="http://127.0.0.1:9/v1/traces"))
assert tracing.configure(settings) is False
import asyncio, time
from provisioning.orchestrator.service import OrchestratorService
from provisioning.orchestrator.store import open_store
async def main():
    service = OrchestratorService(settings, open_store(settings), "t" * 32)
    await service.start()
    try:
        wf = await service.submit_workflow({"name": "w", "operations": [
            {"id": "a", "run": {"command": [sys.executable, "-c",
             "import os; print('RESULT: ' + repr(os.environ.get('TRACEPARENT')))"]}}]})
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            found, _, tasks = await service.workflow(wf.id)
            if found.status.finished:
                print("workflow", found.status.value, tasks[0].result)
                return
            await asyncio.sleep(0.05)
    finally:
        await service.stop()
asyncio.run(main())
"""
    done = subprocess.run(
        [sys.executable, "-c", script.replace("DATA_DIR", repr(str(tmp_path)))],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "OpenTelemetry is not installed" in done.stdout
    assert "workflow completed None" in done.stdout
