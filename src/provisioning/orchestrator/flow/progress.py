"""The progression of a workflow, written once: how an ended task advances it, and what
cancel, retry (from the checkpoint) and the start of a rollback do to it.

The algorithm is here; the persistence is a store's. Each function works on a
:class:`WorkflowTx`, one workflow inside the transaction of one event, through a
narrow interface: read what a rule needs (the workflow's row, one step, the edges of
one step), and apply what a rule decided. A SQL store answers each call with one of
its named queries (so an ended task touches only its step, its dependents and the
workflow's counters); SurrealDB with the workflow it loaded and the writes it queues.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from ...tasks import TaskStatus, WorkflowStatus
from ..models.records import Row
from . import rules
from .rules import Failure, ResetStep, StepStatus


class WorkflowTx(Protocol):
    """One workflow, inside one transaction (its row locked where the store can)."""

    def row(self) -> Row:
        """The workflow as it stands now (``status``, ``phase``, ``failure``,
        ``tasks_open``)."""

    def count_task(self, completed: int, failed: int) -> None:
        """A task ended: one task fewer open, ``completed``/``failed`` more."""

    def count_item(self, step_id: str, *, failed: bool, now: float) -> Row | None:
        """One item of the step ended (a failed one fails the step at ``now``); the step
        (``completed``, ``total``, ``failed``, ``on_failure``) after it."""

    def complete_step(self, step_id: str, now: float) -> Sequence[Row]:
        """The step completed (a checkpoint): its dependents (``step_id``, ``status``,
        ``waiting_on``), each waiting for one step fewer."""

    def start_step(self, step_id: str, now: float) -> None:
        """The step is ready: its blocked tasks become pending, ready at ``now``."""

    def dependents(self, step_id: str) -> Sequence[str]: ...

    def dependencies(self, step_id: str) -> Sequence[str]: ...

    def skip_step(self, step_id: str, reason: str) -> None:
        """Skip the step and its tasks not started (no longer counted open)."""

    def close_open(self, status: str, reason: str) -> None:
        """End every task not started (no longer counted open), and the steps none of
        whose items ended; running tasks go on."""

    def set_error(self, error: str, failure: Failure | None) -> None:
        """Stop the workflow with ``failure`` and ``error`` unless it stopped already;
        without a failure, record ``error`` unless an error was recorded."""

    def failed_steps(self, phase: str) -> int:
        """How many steps of ``phase`` failed, were skipped or cancelled."""

    def end_phase(self, status: WorkflowStatus, completed_at: float | None) -> None: ...

    def mark_cancel(self) -> None:
        """The workflow stops, cancelled."""

    def flag_running(self) -> list[str]:
        """Ask every running task to cancel; their ids, oldest first."""

    def reopen(self, phase: str) -> int:
        """Reopen (blocked, their tries given back) the tasks of ``phase`` that did not
        complete; how many."""

    def phase_steps(self, phase: str) -> Sequence[Row]:
        """The steps of ``phase`` (``step_id``, ``status``)."""

    def reset_step(self, step_id: str, reset: ResetStep) -> None: ...

    def resume(self, status: WorkflowStatus, reopened: int) -> None:
        """The workflow runs again in its phase with ``reopened`` tasks open."""

    def start_undo(self, count: int) -> None:
        """The rollback starts with ``count`` undo tasks (their steps just added)."""


def advance(
    w: WorkflowTx, step_id: str, status: TaskStatus, error: str | None, now: float
) -> WorkflowStatus | None:
    """A task of the workflow just became ``status``: count it, release or skip the
    dependents of its step, apply the failure policy, and end the phase when nothing is
    left open; the workflow's new status, if it changed."""
    wf = w.row()
    w.count_task(*rules.counted(status))
    if status is TaskStatus.COMPLETED:
        step = w.count_item(step_id, failed=False, now=now)
        done = step is not None and rules.step_completes(
            step["completed"], step["total"], step["failed"]
        )
        if done:
            for dep in w.complete_step(step_id, now):
                if rules.ready_after_release(dep["waiting_on"], dep["status"], wf["failure"]):
                    w.start_step(dep["step_id"], now)
    elif status is not TaskStatus.SKIPPED:
        step = w.count_item(step_id, failed=True, now=now)
        if step is not None and wf["failure"] is None:
            change = rules.on_step_failed(
                step_id=step_id,
                on_failure=step["on_failure"],
                phase=wf["phase"],
                task_status=status.value,
                task_error=error,
            )
            w.set_error(change.error, change.failure)
            if change.skip_reason is not None:
                for dependent in rules.dependents_to_skip(step_id, w.dependents):
                    w.skip_step(dependent, change.skip_reason)
            if change.close_reason is not None:
                w.close_open(StepStatus.SKIPPED.value, change.close_reason)
    return end_phase_if_done(w, now)


def end_phase_if_done(w: WorkflowTx, now: float) -> WorkflowStatus | None:
    """End the current phase when no task of it is open; the new status, if any."""
    wf = w.row()
    if wf["tasks_open"] > 0:
        return None
    status = rules.phase_end(wf["phase"], wf["failure"], w.failed_steps(wf["phase"]))
    w.end_phase(status, rules.completed_at(status, now))
    return status


def cancel(w: WorkflowTx, now: float) -> list[str]:
    """Cancel what has not started and flag the running tasks (returned, oldest first);
    a finished workflow is left as it is."""
    current = WorkflowStatus(w.row()["status"])
    if current.finished:
        return []
    w.mark_cancel()
    w.close_open(StepStatus.CANCELLED.value, "cancelled with its workflow")
    running = w.flag_running()
    if rules.cancel_ends_at_once(current):
        w.end_phase(WorkflowStatus.CANCELLED, now)
    else:
        end_phase_if_done(w, now)
    return running


def reset(w: WorkflowTx, now: float) -> None:
    """Resume from the checkpoint: the tasks of the current phase that did not complete
    start again, each step waiting again for what it depends on that did not complete."""
    phase = w.row()["phase"]
    reopened = w.reopen(phase)
    steps = w.phase_steps(phase)
    done = {s["step_id"] for s in steps if s["status"] == StepStatus.COMPLETED}
    for step in steps:
        if step["step_id"] in done:
            continue
        again = rules.reset_step(w.dependencies(step["step_id"]), done)
        w.reset_step(step["step_id"], again)
        if again.waiting_on == 0:
            w.start_step(step["step_id"], now)
    w.resume(rules.running_status(phase), reopened)
    if not reopened:
        end_phase_if_done(w, now)


def begin_undo(w: WorkflowTx, count: int, now: float) -> None:
    """The undo steps (``count`` tasks) were added: the rollback starts."""
    w.start_undo(count)
    if count == 0:
        end_phase_if_done(w, now)
