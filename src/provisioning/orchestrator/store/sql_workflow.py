"""The workflows of both SQL stores (SQLite, PostgreSQL): creation, and the persistence
:mod:`..flow.progress` works on, through the named queries of ``sql/workflow.sql``
(with a dialect's overrides).

Progression runs inside the transaction that ends a task, so a finished step releases
its dependents atomically with its own completion: a crash can never leave a completed
step whose dependents were not released. Each call of the progression is one named
query: an ended task touches its step, its dependents and the workflow's counters, no
more. What a dialect adds comes in through three hooks: its queries (PostgreSQL locks
the workflow's row), ``_work_released`` (a ``NOTIFY`` for idle nodes) and ``_run_verb``
(PostgreSQL runs a verb that lost a deadlock again).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Sequence
from typing import Any, TypeVar, Unpack

from ...tasks import TaskStatus, WorkflowStatus
from ..flow import Failure, ResetStep, progress
from ..models import NewStep, Workflow
from ..models.records import NEW_STEP_FIELDS, NEW_TASK_FIELDS, Row, workflow_of
from .base import NewWorkflow, TaskDefaults, task_defaults
from .rows import NEW_TASK_COLUMNS, markers
from .sql_dialect import Cursor, SqlDialect, one, verb
from .workflows import StoreWorkflow, WorkflowVerbs, new_steps, new_workflow_fields

T = TypeVar("T")


class SqlWorkflow:
    """One workflow inside a SQL transaction (a :class:`~.workflows.StoreWorkflow`)."""

    def __init__(self, store: SqlWorkflowVerbs, db: Any, workflow_id: str) -> None:
        self._store, self._db, self.id = store, db, workflow_id
        self.released = 0  # tasks this transaction made claimable

    def _q(self, name: str, *args: Any) -> Cursor:
        return self._store._q(self._db, name, *args)

    def row(self) -> Row:
        return one(self._q("workflow", self.id).fetchone())

    def workflow(self) -> Workflow:
        return workflow_of(self.row())

    def add_steps(self, steps: Sequence[NewStep], **defaults: Unpack[TaskDefaults]) -> int:
        step_rows: list[tuple[Any, ...]] = []
        task_rows: list[tuple[Any, ...]] = []
        for step, tasks in new_steps(self.id, steps, **defaults):
            step_rows.append(tuple(step[name] for name in NEW_STEP_FIELDS))
            task_rows.extend(tuple(task[name] for name in NEW_TASK_FIELDS) for task in tasks)
            self.released += len(tasks) if step["waiting_on"] == 0 else 0
        many = self._store._many
        many(self._db, self._store._queries["insert_step"], step_rows)
        # Made as they are inserted: a million edges held as tuples cost ~80 MB.
        edge_rows = ((self.id, dep, step.step_id) for step in steps for dep in step.depends_on)
        many(self._db, self._store._queries["insert_edge"], edge_rows)
        columns, values = NEW_TASK_COLUMNS, markers(self._store.marker)
        many(self._db, f"INSERT INTO tasks ({columns}) VALUES ({values})", task_rows)
        return len(task_rows)

    def count_task(self, completed: int, failed: int) -> None:
        self._q("count_task", completed, failed, self.id)

    def count_item(self, step_id: str, *, failed: bool, now: float) -> Row:
        if failed:
            return one(self._q("step_item_failed", now, self.id, step_id).fetchone())
        return one(self._q("step_item_completed", self.id, step_id).fetchone())

    def complete_step(self, step_id: str, now: float) -> list[Row]:
        self._q("step_completed", now, self.id, step_id)
        self._q("checkpoint", now, self.id)
        return self._q("release_dependents", self.id, self.id, step_id).fetchall()

    def start_step(self, step_id: str, now: float) -> None:
        self._q("set_step_status", "ready", self.id, step_id)
        self.released += self._q("start_step_tasks", now, self.id, step_id).rowcount

    def dependents(self, step_id: str) -> list[str]:
        return [row["dependent_id"] for row in self._q("dependents", self.id, step_id).fetchall()]

    def dependencies(self, step_id: str) -> list[str]:
        return [row["step_id"] for row in self._q("dependencies", self.id, step_id).fetchall()]

    def skip_step(self, step_id: str, reason: str) -> None:
        self._q("skip_step", self.id, step_id)
        skipped = self._q("skip_step_tasks", reason, self.id, step_id).rowcount
        self._q("uncount_open", skipped, self.id)

    def close_open(self, status: str, reason: str) -> None:
        closed = self._q("close_tasks", status, reason, self.id).rowcount
        self._q("close_steps", status, self.id)
        self._q("uncount_open", closed, self.id)

    def set_error(self, error: str, failure: Failure | None) -> None:
        if failure is None:
            self._q("set_error_once", error, self.id)
        else:
            self._q("set_failure_once", failure.value, error, self.id)

    def failed_steps(self, phase: str) -> int:
        return int(one(self._q("failed_steps", self.id, phase).fetchone())["n"])

    def end_phase(self, status: WorkflowStatus, completed_at: float | None) -> None:
        self._q("end_phase", status.value, completed_at, self.id)

    def mark_cancel(self) -> None:
        self._q("mark_cancel", self.id)

    def mark_rollback(self) -> None:
        self._q("request_rollback", self.id)

    def flag_running(self) -> list[str]:
        running = self._q("flag_running_cancel", self.id).fetchall()
        return [row["id"] for row in sorted(running, key=lambda row: row["seq"])]

    def reopen(self, phase: str) -> int:
        return self._q("reopen_tasks", self.id, self.id, phase).rowcount

    def phase_steps(self, phase: str) -> list[Row]:
        return self._q("phase_steps", self.id, phase).fetchall()

    def reset_step(self, step_id: str, reset: ResetStep) -> None:
        self._q("reset_step", reset.status.value, reset.waiting_on, self.id, step_id)

    def resume(self, status: WorkflowStatus, reopened: int) -> None:
        self._q("resume_workflow", status.value, reopened, self.id)

    def start_undo(self, count: int) -> None:
        self._q("begin_undo", WorkflowStatus.ROLLING_BACK.value, count, count, self.id)


class SqlWorkflowVerbs(SqlDialect, WorkflowVerbs):
    """The workflow verbs over a SQL connection; the store provides the dialect."""

    @verb
    def create_workflow(self, **new: Unpack[NewWorkflow]) -> Workflow:
        """Persist a workflow with all its steps and tasks in one transaction."""
        fields = new_workflow_fields(str(uuid.uuid4()), new)
        with self._tx() as db:
            self._q(db, "insert_workflow", *fields.values())
            self._q(db, "insert_workflow_spec", fields["id"], json.dumps(new["spec"]))
            w = SqlWorkflow(self, db, fields["id"])
            count = w.add_steps(new["steps"], **task_defaults(new))
            row = self._q(db, "set_task_totals", count, count, w.id).fetchone()
            if w.released:
                self._work_released(db)
        return workflow_of(one(row))

    def _on_workflow(
        self, verb: str, workflow_id: str, act: Callable[[StoreWorkflow], T]
    ) -> tuple[Workflow, T] | None:
        def run() -> tuple[Workflow, T] | None:
            with self._tx() as db:
                if self._q(db, "lock_workflow", workflow_id).fetchone() is None:
                    return None
                w = SqlWorkflow(self, db, workflow_id)
                value = act(w)
                if w.released:
                    self._work_released(db)
                return w.workflow(), value

        return self._run_verb(verb, run)

    def _advance(self, db: Any, task: Row, now: float) -> WorkflowStatus | None:
        """A workflow task just became terminal (inside the transaction that ended it,
        the workflow's row locked): its workflow advances."""
        w = SqlWorkflow(self, db, task["workflow_id"])
        status = TaskStatus(task["status"])
        moved = progress.advance(w, task["step_id"], status, task["error"], now)
        if w.released:
            self._work_released(db)
        return moved
