"""The scheduler's and engine's few calls into metrics and traces, in one place."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from ..tasks import Outcome
from . import metrics, tracing
from .models import Step, Task, Workflow
from .storeclient import StoreClient

log = logging.getLogger("provisioning.orchestrator.observe")

_reporting: set[asyncio.Task[None]] = set()


def attempt_started(task: Task, attempt: int) -> dict[str, str]:
    """At claim: the attempt's span opens; returns the handler's extra environment."""
    return tracing.attempt_started(task, attempt)


def attempt_spawned(task: Task, claimed_at: float) -> None:
    """``claimed_at`` is the ``time.monotonic()`` of the claim."""
    metrics.task_spawned(task, time.monotonic() - claimed_at)


def attempt_finished(
    task: Task, attempt: int, outcome: Outcome, updated: Task, *, retrying: bool
) -> None:
    tracing.attempt_finished(task, attempt, outcome)
    if retrying:
        metrics.task_retrying(updated)
    if updated.status.terminal:
        metrics.task_finished(updated)
        tracing.task_finished(updated)


def workflow_changed(store: StoreClient, workflow: Workflow) -> None:
    """A workflow event was published; a finished workflow's steps are reported once."""
    if not workflow.status.finished:
        return
    job = asyncio.ensure_future(_report_finished(store, workflow))
    _reporting.add(job)
    job.add_done_callback(_reporting.discard)


async def _report_finished(store: StoreClient, workflow: Workflow) -> None:
    try:
        steps: list[Step] = await store.run(store.store.workflow_steps, workflow.id)
        tasks: list[Task] = await store.run(store.store.workflow_tasks, workflow.id)
    except Exception as exc:  # the store is closing; metrics must not break a workflow
        log.debug("workflow %s not reported: %s", workflow.id, exc)
        return
    metrics.steps_finished(steps, tasks)
    tracing.workflow_finished(workflow, steps, tasks)


async def drain() -> None:
    """Wait for pending reports (at stop, before the store closes)."""
    pending: list[Any] = list(_reporting)
    if pending:
        await asyncio.wait(pending, timeout=5)
