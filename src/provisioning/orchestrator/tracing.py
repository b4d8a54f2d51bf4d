"""OpenTelemetry traces: one trace per workflow, a span per step and per attempt.

Optional: without the ``tracing`` extra (or with ``tracing.endpoint`` empty) every
call here does nothing. Trace and step span ids are derived from the workflow's and
the step's ids, so every node of a shared store, and a node after a restart, puts
the spans of one workflow in one trace. An attempt's span is live: the handler
process gets it as ``TRACEPARENT`` (W3C trace context) and can continue the trace.
Step spans and the workflow's root span are written when the workflow finishes,
from the times the store recorded.
"""

from __future__ import annotations

import contextvars
import hashlib
import logging
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from ..config import Settings
from ..tasks import AttemptStatus, Outcome
from .models import Step, Task, Workflow

log = logging.getLogger("provisioning.orchestrator.tracing")

try:
    from opentelemetry import trace as otel
    from opentelemetry.context import Context
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        SimpleSpanProcessor,
        SpanExporter,
    )
    from opentelemetry.sdk.trace.id_generator import IdGenerator, RandomIdGenerator

    AVAILABLE = True
except ImportError:  # the optional extra is not installed
    AVAILABLE = False

if TYPE_CHECKING:
    from opentelemetry.trace import Span, Tracer

_chosen: contextvars.ContextVar[tuple[int, int] | None] = contextvars.ContextVar(
    "provisioning_chosen_ids", default=None
)
# Finished spans already written by this process (a workflow is reported once per finish).
_written: set[tuple[str, ...]] = set()
WRITTEN_MEMORY = 100_000


def derived_id(bits: int, *parts: str) -> int:
    digest = hashlib.sha256("\0".join(parts).encode()).digest()
    return int.from_bytes(digest[: bits // 8], "big") or 1


def trace_id_of(root: str) -> int:
    """The trace of a workflow (or of a task outside any workflow)."""
    return derived_id(128, "trace", root)


def root_span_id(root: str) -> int:
    return derived_id(64, "root", root)


def step_span_id(workflow_id: str, step_id: str) -> int:
    return derived_id(64, "step", workflow_id, step_id)


def _ns(seconds: float) -> int:
    return int(seconds * 1e9)


class _State:
    def __init__(self, provider: Any) -> None:
        self.provider = provider
        self.tracer: Tracer = provider.get_tracer("provisioning.orchestrator")
        self.attempts: dict[tuple[str, int], Span] = {}


_state: _State | None = None

if AVAILABLE:

    class _ChosenIds(IdGenerator):
        """Random ids, unless the caller chose them (derived ids of steps and roots)."""

        def __init__(self) -> None:
            self._random = RandomIdGenerator()

        def generate_span_id(self) -> int:
            chosen = _chosen.get()
            return chosen[1] if chosen else self._random.generate_span_id()

        def generate_trace_id(self) -> int:
            chosen = _chosen.get()
            return chosen[0] if chosen else self._random.generate_trace_id()


def _install(processor: Any, service_name: str) -> None:
    global _state
    shutdown()
    provider = TracerProvider(
        resource=Resource.create({"service.name": service_name}), id_generator=_ChosenIds()
    )
    provider.add_span_processor(processor)
    _state = _State(provider)


def configure(settings: Settings) -> bool:
    """Turn traces on when ``tracing.endpoint`` is set (OTLP over HTTP); ``True`` if on."""
    endpoint = settings.tracing.endpoint
    if not endpoint:
        return _state is not None
    if not AVAILABLE:
        log.warning(
            "tracing.endpoint is set but OpenTelemetry is not installed "
            "(pip install 'provisioning[tracing]'): no traces"
        )
        return False
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError:
        log.warning("tracing.endpoint is set but the OTLP exporter is not installed: no traces")
        return False
    _install(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)), settings.tracing.service_name)
    log.info("traces go to %s", endpoint)
    return True


def use_exporter(exporter: SpanExporter, service_name: str = "provisioning-orchestrator") -> None:
    """Send every span to ``exporter`` as it ends (tests: the SDK's in-memory exporter)."""
    _install(SimpleSpanProcessor(exporter), service_name)


def shutdown() -> None:
    """Flush and stop (at the node's stop)."""
    global _state
    if _state is not None:
        for span in _state.attempts.values():
            span.end()
        _state.provider.shutdown()
        _state = None


def enabled() -> bool:
    return _state is not None


@contextmanager
def _ids(trace_id: int, span_id: int) -> Iterator[None]:
    token = _chosen.set((trace_id, span_id))
    try:
        yield
    finally:
        _chosen.reset(token)


def _parent(trace_id: int, span_id: int) -> Any:
    context = otel.SpanContext(
        trace_id, span_id, is_remote=True, trace_flags=otel.TraceFlags(otel.TraceFlags.SAMPLED)
    )
    return otel.set_span_in_context(otel.NonRecordingSpan(context))


def attempt_started(task: Task, attempt: int) -> dict[str, str]:
    """Open the attempt's span; the environment that hands it to the handler."""
    if _state is None:
        return {}
    root = task.workflow_id or task.id
    trace_id = trace_id_of(root)
    parent_id = (
        step_span_id(task.workflow_id, task.step_id)
        if task.workflow_id and task.step_id
        else root_span_id(root)
    )
    span = _state.tracer.start_span(
        f"attempt {attempt} {task.name}",
        context=_parent(trace_id, parent_id),
        attributes={
            "provisioning.task.id": task.id,
            "provisioning.task.name": task.name,
            "provisioning.attempt": attempt,
            "provisioning.workflow.id": task.workflow_id or "",
            "provisioning.step.id": task.step_id or "",
        },
    )
    _state.attempts[(task.id, attempt)] = span
    context = span.get_span_context()
    return {"TRACEPARENT": f"00-{context.trace_id:032x}-{context.span_id:016x}-01"}


def attempt_finished(task: Task, attempt: int, outcome: Outcome) -> None:
    if _state is None:
        return
    span = _state.attempts.pop((task.id, attempt), None)
    if span is None:
        return  # started before this process (recovery settles it) or before tracing
    span.set_attribute("provisioning.attempt.status", outcome.status.value)
    if outcome.exit_code is not None:
        span.set_attribute("process.exit.code", outcome.exit_code)
    if outcome.status is not AttemptStatus.COMPLETED:
        span.set_status(otel.Status(otel.StatusCode.ERROR, outcome.error or outcome.status.value))
    span.end()


def _write(
    trace_id: int,
    span_id: int,
    parent: tuple[int, int] | None,
    name: str,
    start: float,
    end: float,
    attributes: dict[str, Any],
    failed: str | None,
) -> None:
    assert _state is not None
    if len(_written) > WRITTEN_MEMORY:
        _written.clear()
    with _ids(trace_id, span_id):
        span = _state.tracer.start_span(
            name,
            context=_parent(*parent) if parent else Context(),
            start_time=_ns(start),
            attributes=attributes,
        )
    if failed:
        span.set_status(otel.Status(otel.StatusCode.ERROR, failed))
    span.end(end_time=_ns(max(end, start)))


def task_finished(task: Task) -> None:
    """A task outside any workflow ended: its own trace's root span."""
    if _state is None or task.workflow_id is not None:
        return
    key = ("task", task.id, str(task.completed_at))
    if key in _written:
        return
    _written.add(key)
    _write(
        trace_id_of(task.id),
        root_span_id(task.id),
        None,
        f"task {task.name}",
        task.created_at,
        task.completed_at or time.time(),
        {"provisioning.task.id": task.id, "provisioning.task.status": task.status.value},
        None if task.status.value == "completed" else (task.error or task.status.value),
    )


def workflow_finished(workflow: Workflow, steps: Iterable[Step], tasks: Iterable[Task]) -> None:
    """Write the spans of the workflow's steps and its root span."""
    if _state is None:
        return
    trace_id = trace_id_of(workflow.id)
    root = (trace_id, root_span_id(workflow.id))
    first_start: dict[str, float] = {}
    for task in tasks:
        if task.step_id is not None and task.started_at is not None:
            known = first_start.get(task.step_id, task.started_at)
            first_start[task.step_id] = min(known, task.started_at)
    for step in steps:
        start = first_start.get(step.step_id)
        if start is None:
            continue  # never started (skipped, or cancelled while blocked)
        key: tuple[str, ...] = ("step", workflow.id, step.step_id, str(step.finished_at))
        if key in _written:
            continue
        _written.add(key)
        _write(
            trace_id,
            step_span_id(workflow.id, step.step_id),
            root,
            f"step {step.step_id}",
            start,
            step.finished_at or time.time(),
            {
                "provisioning.workflow.id": workflow.id,
                "provisioning.step.id": step.step_id,
                "provisioning.step.kind": step.kind,
                "provisioning.step.status": step.status,
                "provisioning.step.tasks": step.total,
                "provisioning.step.failed": step.failed,
            },
            None if step.status == "completed" else step.status,
        )
    key = ("workflow", workflow.id, str(workflow.completed_at))
    if key in _written:
        return
    _written.add(key)
    _write(
        trace_id,
        root[1],
        None,
        f"workflow {workflow.name}",
        workflow.created_at,
        workflow.completed_at or time.time(),
        {
            "provisioning.workflow.id": workflow.id,
            "provisioning.workflow.name": workflow.name,
            "provisioning.workflow.status": workflow.status.value,
            "provisioning.workflow.tasks": workflow.tasks_total,
        },
        None if workflow.status.value == "completed" else (workflow.error or workflow.status.value),
    )
