"""Progression, failure policy, phase end, retry and cancel of a workflow.

Each function takes the few values an event needs (never a connection, never the
whole spec) and returns what changes, so a store reads only the rows an event
touches: the finished task's step, its dependents through the edge index, and
the workflow's counters.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum

from ...tasks import AttemptStatus, TaskStatus, WorkflowStatus


class StepStatus(StrEnum):
    BLOCKED = "blocked"
    READY = "ready"
    COMPLETED = "completed"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"


class Phase(StrEnum):
    RUN = "run"
    UNDO = "undo"


class Failure(StrEnum):
    """Why a workflow stops early (its ``failure`` column)."""

    FAIL = "fail"
    ROLLBACK = "rollback"
    CANCEL = "cancel"


# Tasks that have not started: what a failure or a cancel closes.
OPEN_TASK = (TaskStatus.BLOCKED.value, TaskStatus.PENDING.value)
TERMINAL_TASK = tuple(s.value for s in TaskStatus if s.terminal)
# Steps that count against a phase when it ends.
FAILED_STEP = (StepStatus.FAILED.value, StepStatus.SKIPPED.value, StepStatus.CANCELLED.value)

_TERMINAL_FOR = {
    AttemptStatus.COMPLETED: TaskStatus.COMPLETED,
    AttemptStatus.FAILED: TaskStatus.FAILED,
    AttemptStatus.CANCELLED: TaskStatus.CANCELLED,
    AttemptStatus.TIMED_OUT: TaskStatus.TIMED_OUT,
    AttemptStatus.INTERRUPTED: TaskStatus.FAILED,
    AttemptStatus.LOST: TaskStatus.FAILED,
}


def terminal_status(attempt: AttemptStatus) -> TaskStatus:
    """The status a task ends in when its last attempt ended so."""
    return _TERMINAL_FOR[attempt]


@dataclass(frozen=True)
class TaskEnding:
    """What ending an attempt does to its task: back to ``pending``, ready at
    ``run_after`` (a retry; ``tries_back`` 1 gives the try back), or its terminal status
    (``progress`` 100 on completion; ``None`` leaves it as it is)."""

    status: TaskStatus
    run_after: float | None = None
    tries_back: int = 0
    completed_at: float | None = None
    progress: int | None = None


def task_ending(
    attempt: AttemptStatus, *, now: float, retry_at: float | None, counts: bool
) -> TaskEnding:
    """The task's change when its attempt ended so (a retry when ``retry_at`` is set)."""
    if retry_at is not None:
        return TaskEnding(TaskStatus.PENDING, run_after=retry_at, tries_back=0 if counts else 1)
    status = terminal_status(attempt)
    progress = 100 if status is TaskStatus.COMPLETED else None
    return TaskEnding(status, completed_at=now, progress=progress)


def initial_status(waiting_on: int) -> tuple[StepStatus, TaskStatus]:
    """A new (or reopened) step and its tasks: ready when nothing is left to wait for."""
    if waiting_on == 0:
        return StepStatus.READY, TaskStatus.PENDING
    return StepStatus.BLOCKED, TaskStatus.BLOCKED


def counted(status: TaskStatus) -> tuple[int, int]:
    """What a task becoming ``status`` adds to its workflow's (completed, failed)."""
    failed = status in (TaskStatus.FAILED, TaskStatus.TIMED_OUT, TaskStatus.CANCELLED)
    return int(status is TaskStatus.COMPLETED), int(failed)


def step_completes(completed: int, total: int, failed: int) -> bool:
    """A step is complete when every item completed and none failed."""
    return completed == total and failed == 0


def ready_after_release(waiting_on: int, status: str, failure: str | None) -> bool:
    """Whether a dependent becomes ready once a step it waits for completed (its
    ``waiting_on`` already decremented). A failing workflow starts nothing new."""
    return failure is None and waiting_on == 0 and status == StepStatus.BLOCKED


@dataclass(frozen=True)
class FailureChange:
    """What a failed step does to its workflow under its ``on_failure`` policy.

    With ``failure`` set the workflow stops (unless it already stopped) and every task
    not started is closed as ``skipped`` with ``close_reason``; without it (policy
    ``continue``) only the steps depending on the failed one are skipped, and
    ``error`` is recorded unless an earlier one was.
    """

    error: str
    failure: Failure | None
    close_reason: str | None
    skip_reason: str | None


def on_step_failed(
    *, step_id: str, on_failure: str, phase: str, task_status: str, task_error: str | None
) -> FailureChange:
    error = f"step {step_id} {task_status}: {task_error or ''}".strip()
    if on_failure == "continue":
        return FailureChange(error, None, None, f"skipped: it depends on failed step {step_id}")
    failure = Failure.ROLLBACK if on_failure == "rollback" and phase == Phase.RUN else Failure.FAIL
    return FailureChange(error, failure, f"not started: step {step_id} failed", None)


def dependents_to_skip(step_id: str, dependents_of: Callable[[str], Iterable[str]]) -> list[str]:
    """Every step depending on ``step_id``, directly or not, breadth first."""
    order: list[str] = []
    seen = {step_id}
    queue = deque([step_id])
    while queue:
        for dependent in dependents_of(queue.popleft()):
            if dependent not in seen:
                seen.add(dependent)
                order.append(dependent)
                queue.append(dependent)
    return order


def phase_end(phase: str, failure: str | None, failed_steps: int) -> WorkflowStatus:
    """The status a workflow takes when no task of its current phase is left open."""
    if phase == Phase.UNDO:
        return WorkflowStatus.ROLLBACK_FAILED if failed_steps else WorkflowStatus.ROLLED_BACK
    if failure == Failure.CANCEL:
        return WorkflowStatus.CANCELLED
    if failure == Failure.ROLLBACK:
        return WorkflowStatus.ROLLBACK_PENDING
    if failed_steps or failure == Failure.FAIL:
        return WorkflowStatus.FAILED
    return WorkflowStatus.COMPLETED


def completed_at(status: WorkflowStatus, now: float) -> float | None:
    """A workflow waiting for its rollback has not finished."""
    return None if status is WorkflowStatus.ROLLBACK_PENDING else now


def cancel_ends_at_once(status: WorkflowStatus) -> bool:
    """A workflow waiting for its rollback to be planned has nothing running: a cancel
    ends it on the spot; otherwise it ends when its running tasks do."""
    return status is WorkflowStatus.ROLLBACK_PENDING


@dataclass(frozen=True)
class ResetStep:
    status: StepStatus
    waiting_on: int


def reset_step(depends_on: Iterable[str], done: set[str]) -> ResetStep:
    """A step of the phase being retried that did not complete: it waits again for
    what it depends on that did not complete (the checkpoint)."""
    waiting = sum(1 for dep in depends_on if dep not in done)
    return ResetStep(initial_status(waiting)[0], waiting)


def running_status(phase: str) -> WorkflowStatus:
    """The status of a workflow resumed in ``phase``."""
    return WorkflowStatus.RUNNING if phase == Phase.RUN else WorkflowStatus.ROLLING_BACK


RETRYABLE = (WorkflowStatus.FAILED, WorkflowStatus.CANCELLED, WorkflowStatus.ROLLBACK_FAILED)
ROLLBACK_FROM = (WorkflowStatus.COMPLETED, WorkflowStatus.FAILED, WorkflowStatus.CANCELLED)


def can_retry(status: WorkflowStatus) -> bool:
    return status in RETRYABLE


def can_request_rollback(status: WorkflowStatus, phase: str) -> bool:
    """Only a finished workflow that was not rolled back yet can be rolled back."""
    return phase == Phase.RUN and status in ROLLBACK_FROM
