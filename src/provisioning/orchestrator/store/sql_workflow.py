"""The workflow verbs of both SQL stores (SQLite, PostgreSQL): one implementation that
applies the changes :mod:`..flow` decides, through the named queries of
``sql/workflow.sql`` (with a dialect's overrides).

Progression runs inside the transaction that ends a task, so a finished step releases
its dependents atomically with its own completion: a crash can never leave a completed
step whose dependents were not released. What a dialect adds comes in through three
hooks: its queries (PostgreSQL locks the workflow's row), ``_work_released`` (a
``NOTIFY`` for idle nodes) and ``_run_verb`` (PostgreSQL runs a verb that lost a
deadlock again).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any, Unpack

from ...tasks import Priority, TaskStatus, WorkflowStatus
from .. import flow
from ..models import NewStep, Workflow
from ..models.records import Row, workflow_of
from .base import NewWorkflow, TaskDefaults, task_defaults
from .rows import NEW_TASK_COLUMNS, markers, new_task_values
from .sql_queries import SqlDialect, one, verb


class SqlWorkflowVerbs(SqlDialect):
    """The workflow verbs over a SQL connection; the store provides the dialect."""

    def _workflow_row(self, db: Any, workflow_id: str) -> Row:
        return one(self._q(db, "workflow", workflow_id).fetchone())

    # -- creation -----------------------------------------------------------------------

    def _insert_steps(
        self,
        db: Any,
        workflow_id: str,
        steps: Sequence[NewStep],
        **defaults: Unpack[TaskDefaults],
    ) -> int:
        """Insert steps, their edges and tasks; the number of tasks."""
        step_rows: list[tuple[Any, ...]] = []
        task_rows: list[tuple[Any, ...]] = []
        pending = 0
        for step in steps:
            waiting = len(step.depends_on)
            step_status, task_status = flow.initial_status(waiting)
            step_rows.append(
                (
                    workflow_id,
                    step.step_id,
                    step.kind,
                    step.position,
                    step.layer,
                    step.on_failure,
                    step_status.value,
                    waiting,
                    len(step.tasks),
                )
            )
            for item, task in enumerate(step.tasks):
                task_rows.append(
                    new_task_values(
                        task,
                        status=task_status.value,
                        workflow_id=workflow_id,
                        step_id=step.step_id,
                        item=item,
                        **defaults,
                    )
                )
                pending += waiting == 0
        self._many(db, self._queries["insert_step"], step_rows)
        # Made as they are inserted: a million edges held as tuples cost ~80 MB.
        edge_rows = ((workflow_id, dep, step.step_id) for step in steps for dep in step.depends_on)
        self._many(db, self._queries["insert_edge"], edge_rows)
        insert_task = f"INSERT INTO tasks ({NEW_TASK_COLUMNS}) VALUES ({markers(self.marker)})"
        self._many(db, insert_task, task_rows)
        if pending:
            self._work_released(db)
        return len(task_rows)

    @verb
    def create_workflow(self, **new: Unpack[NewWorkflow]) -> Workflow:
        """Persist a workflow with all its steps and tasks in one transaction."""
        workflow_id = str(uuid.uuid4())
        now = new["now"]
        with self._tx() as db:
            self._q(
                db,
                "insert_workflow",
                workflow_id,
                new["name"],
                new["version"],
                WorkflowStatus.QUEUED.value,
                int(Priority.parse(new["priority"])),
                new["parallel_limit"],
                bool(new["rollback_enabled"]),
                now,
            )
            self._q(db, "insert_workflow_spec", workflow_id, json.dumps(new["spec"]))
            count = self._insert_steps(db, workflow_id, new["steps"], **task_defaults(new))
            row = self._q(db, "set_task_totals", count, count, workflow_id).fetchone()
        return workflow_of(one(row))

    # -- progression (inside the finishing transaction, the workflow's row locked) -------

    def _advance(self, db: Any, task: Row, now: float) -> WorkflowStatus | None:
        """A workflow task just became terminal: count it, release or skip dependents,
        apply the failure policy, and end the phase when nothing is left open."""
        workflow_id, step_id = task["workflow_id"], task["step_id"]
        status = TaskStatus(task["status"])
        wf = self._workflow_row(db, workflow_id)
        completed, failed = flow.counted(status)
        self._q(db, "count_task", completed, failed, workflow_id)
        if status is TaskStatus.COMPLETED:
            step = one(self._q(db, "step_item_completed", workflow_id, step_id).fetchone())
            if flow.step_completes(step["completed"], step["total"], step["failed"]):
                self._step_completed(db, wf, step_id, now)
        elif status is not TaskStatus.SKIPPED:
            step = one(self._q(db, "step_item_failed", now, workflow_id, step_id).fetchone())
            if wf["failure"] is None:
                self._step_failed(db, wf, step, task)
        return self._maybe_end_phase(db, workflow_id, now)

    def _step_completed(self, db: Any, wf: Row, step_id: str, now: float) -> None:
        workflow_id = wf["id"]
        self._q(db, "step_completed", now, workflow_id, step_id)
        self._q(db, "checkpoint", now, workflow_id)
        dependents = self._q(db, "release_dependents", workflow_id, workflow_id, step_id).fetchall()
        released = 0
        for dep in dependents:
            if flow.ready_after_release(dep["waiting_on"], dep["status"], wf["failure"]):
                self._q(db, "set_step_status", "ready", workflow_id, dep["step_id"])
                cursor = self._q(db, "start_step_tasks", now, workflow_id, dep["step_id"])
                released += cursor.rowcount
        if released:
            self._work_released(db)

    def _step_failed(self, db: Any, wf: Row, step: Row, task: Row) -> None:
        workflow_id, step_id = wf["id"], step["step_id"]
        change = flow.on_step_failed(
            step_id=step_id,
            on_failure=step["on_failure"],
            phase=wf["phase"],
            task_status=task["status"],
            task_error=task["error"],
        )
        if change.failure is None:
            self._q(db, "set_error_once", change.error, workflow_id)
            assert change.skip_reason is not None
            self._skip_dependents(db, workflow_id, step_id, change.skip_reason)
            return
        self._q(db, "set_failure_once", change.failure.value, change.error, workflow_id)
        assert change.close_reason is not None
        self._close_open(db, workflow_id, "skipped", change.close_reason)

    def _skip_dependents(self, db: Any, workflow_id: str, step_id: str, reason: str) -> None:
        def dependents_of(current: str) -> list[str]:
            rows = self._q(db, "dependents", workflow_id, current).fetchall()
            return [row["dependent_id"] for row in rows]

        for dependent in flow.dependents_to_skip(step_id, dependents_of):
            self._q(db, "skip_step", workflow_id, dependent)
            skipped = self._q(db, "skip_step_tasks", reason, workflow_id, dependent).rowcount
            self._q(db, "uncount_open", skipped, workflow_id)

    def _close_open(self, db: Any, workflow_id: str, status: str, reason: str) -> int:
        """End every task of the workflow that has not started; running ones go on."""
        closed = self._q(db, "close_tasks", status, reason, workflow_id).rowcount
        self._q(db, "close_steps", status, workflow_id)
        self._q(db, "uncount_open", closed, workflow_id)
        return closed

    def _maybe_end_phase(self, db: Any, workflow_id: str, now: float) -> WorkflowStatus | None:
        """End the current phase when no task of it is open; the new status, if any."""
        wf = self._workflow_row(db, workflow_id)
        if wf["tasks_open"] > 0:
            return None
        failed = one(self._q(db, "failed_steps", workflow_id, wf["phase"]).fetchone())["n"]
        status = flow.phase_end(wf["phase"], wf["failure"], failed)
        self._q(db, "end_phase", status.value, flow.completed_at(status, now), workflow_id)
        return status

    # -- commands -----------------------------------------------------------------------

    @verb
    def cancel_workflow(self, workflow_id: str, *, now: float) -> tuple[Workflow, list[str]] | None:
        """Cancel what has not started; flag running tasks. Returns them for a local stop."""
        with self._tx() as db:
            wf = self._q(db, "lock_workflow", workflow_id).fetchone()
            if wf is None:
                return None
            current = WorkflowStatus(wf["status"])
            if current.finished:
                return workflow_of(wf), []
            self._q(db, "mark_cancel", workflow_id)
            self._close_open(db, workflow_id, "cancelled", "cancelled with its workflow")
            running = self._q(db, "flag_running_cancel", workflow_id).fetchall()
            if flow.cancel_ends_at_once(current):
                self._q(db, "end_phase", WorkflowStatus.CANCELLED.value, now, workflow_id)
            else:
                self._maybe_end_phase(db, workflow_id, now)
            row = self._workflow_row(db, workflow_id)
        return workflow_of(row), [r["id"] for r in sorted(running, key=lambda r: r["seq"])]

    @verb
    def reset_workflow(self, workflow_id: str, *, now: float) -> Workflow | None:
        """Resume a finished, unsuccessful workflow from its checkpoint: tasks of the
        current phase that did not complete start again; completed ones are kept."""
        with self._tx() as db:
            wf = self._q(db, "lock_workflow", workflow_id).fetchone()
            if wf is None:
                return None
            phase = wf["phase"]
            reopened = self._q(db, "reopen_tasks", workflow_id, workflow_id, phase).rowcount
            steps = self._q(db, "phase_steps", workflow_id, phase).fetchall()
            done = {s["step_id"] for s in steps if s["status"] == flow.StepStatus.COMPLETED}
            released = 0
            for step in steps:
                if step["step_id"] in done:
                    continue
                deps = self._q(db, "dependencies", workflow_id, step["step_id"]).fetchall()
                reset = flow.reset_step([r["step_id"] for r in deps], done)
                self._q(
                    db,
                    "reset_step",
                    reset.status.value,
                    reset.waiting_on,
                    workflow_id,
                    step["step_id"],
                )
                if reset.waiting_on == 0:
                    cursor = self._q(db, "start_step_tasks", now, workflow_id, step["step_id"])
                    released += cursor.rowcount
            if released:
                self._work_released(db)
            status = flow.running_status(phase).value
            row = self._q(db, "resume_workflow", status, reopened, workflow_id).fetchone()
            if not reopened:
                self._maybe_end_phase(db, workflow_id, now)
                row = self._workflow_row(db, workflow_id)
        return workflow_of(one(row))

    @verb
    def request_rollback(self, workflow_id: str) -> Workflow | None:
        """Mark a finished workflow for rollback (the engine then plans the undo steps)."""
        with self._tx() as db:
            row = self._q(db, "request_rollback", workflow_id).fetchone()
            if row is None:
                row = self._q(db, "workflow", workflow_id).fetchone()
        return None if row is None else workflow_of(row)

    @verb
    def begin_undo(
        self, workflow_id: str, steps: Sequence[NewStep], **defaults: Unpack[TaskDefaults]
    ) -> Workflow | None:
        """Add the undo steps of a rollback and start it; ``None`` unless the workflow
        was waiting for exactly that (so a repeated call changes nothing)."""
        with self._tx() as db:
            wf = self._q(db, "lock_workflow", workflow_id).fetchone()
            if wf is None or wf["status"] != WorkflowStatus.ROLLBACK_PENDING.value:
                return None
            count = self._insert_steps(db, workflow_id, steps, **defaults)
            rolling = WorkflowStatus.ROLLING_BACK.value
            row = self._q(db, "begin_undo", rolling, count, count, workflow_id).fetchone()
            if count == 0:
                self._maybe_end_phase(db, workflow_id, defaults["now"])
                row = self._workflow_row(db, workflow_id)
        return workflow_of(one(row))
