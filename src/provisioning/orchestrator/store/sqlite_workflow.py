"""Workflow verbs of the SQLite backend: creation, progression, cancel, retry, undo.

Progression runs inside the transaction that ends a task, so a finished step
releases its dependents atomically with its own completion: a crash can never
leave a completed step whose dependents were not released.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections import deque
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any

from ...tasks import Priority, RetryPolicy, WorkflowStatus
from ..models import NewStep, Workflow
from .rows import NEW_TASK_COLUMNS, markers, new_task_values, workflow_of
from .sql_reads import WF

TERMINAL_TASK = ("completed", "failed", "cancelled", "timed_out", "skipped")


def _workflow_row(db: sqlite3.Connection, workflow_id: str) -> sqlite3.Row:
    row: sqlite3.Row = db.execute(
        f"SELECT {WF} FROM workflows WHERE id = ?", (workflow_id,)
    ).fetchone()
    return row


class WorkflowVerbs:
    """Mixed into :class:`~.sqlite.SQLiteStore`."""

    def _tx(self, durable: bool = True) -> AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError

    def _query(self, sql: str, args: Sequence[Any] = ()) -> list[sqlite3.Row]:
        raise NotImplementedError

    # -- creation -----------------------------------------------------------------------

    def _insert_steps(
        self,
        db: sqlite3.Connection,
        workflow_id: str,
        steps: Sequence[NewStep],
        *,
        priority: int,
        default_timeout: float,
        default_retry: RetryPolicy,
        now: float,
        completed_deps: set[str] | None = None,
    ) -> int:
        done = completed_deps or set()
        count = 0
        task_rows = []
        for step in steps:
            waiting = sum(1 for dep in step.depends_on if dep not in done)
            status = "ready" if waiting == 0 else "blocked"
            db.execute(
                "INSERT INTO workflow_steps (workflow_id, step_id, kind, position, layer,"
                " on_failure, status, waiting_on, total) VALUES (?,?,?,?,?,?,?,?,?)",
                (
                    workflow_id,
                    step.step_id,
                    step.kind,
                    step.position,
                    step.layer,
                    step.on_failure,
                    status,
                    waiting,
                    len(step.tasks),
                ),
            )
            db.executemany(
                "INSERT INTO workflow_edges (workflow_id, step_id, dependent_id) VALUES (?,?,?)",
                [(workflow_id, dep, step.step_id) for dep in step.depends_on],
            )
            task_status = "pending" if waiting == 0 else "blocked"
            for item, task in enumerate(step.tasks):
                task_rows.append(
                    new_task_values(
                        task,
                        status=task_status,
                        default_timeout=default_timeout,
                        default_retry=default_retry,
                        now=now,
                        workflow_id=workflow_id,
                        step_id=step.step_id,
                        item=item,
                    )
                )
                count += 1
        db.executemany(
            f"INSERT INTO tasks ({NEW_TASK_COLUMNS}) VALUES ({markers('?')})",
            task_rows,
        )
        return count

    def create_workflow(
        self,
        *,
        name: str,
        version: str,
        spec: dict[str, Any],
        priority: str,
        parallel_limit: int,
        rollback_enabled: bool,
        steps: Sequence[NewStep],
        default_timeout: float,
        default_retry: RetryPolicy,
        now: float,
    ) -> Workflow:
        """Persist a workflow with all its steps and tasks in one transaction."""
        workflow_id = str(uuid.uuid4())
        prio = int(Priority.parse(priority))
        with self._tx() as db:
            db.execute(
                "INSERT INTO workflows (id, name, version, spec, status, priority,"
                " parallel_limit, rollback_enabled, created_at) VALUES (?,?,?,?,?,?,?,?,?)",
                (
                    workflow_id,
                    name,
                    version,
                    json.dumps(spec),
                    WorkflowStatus.QUEUED.value,
                    prio,
                    parallel_limit,
                    int(rollback_enabled),
                    now,
                ),
            )
            count = self._insert_steps(
                db,
                workflow_id,
                steps,
                priority=prio,
                default_timeout=default_timeout,
                default_retry=default_retry,
                now=now,
            )
            row = db.execute(
                "UPDATE workflows SET tasks_total = ?, tasks_open = ? WHERE id = ? RETURNING *",
                (count, count, workflow_id),
            ).fetchone()
        return workflow_of(row)

    # -- progression (inside the finishing transaction) ---------------------------------

    def _advance(
        self, db: sqlite3.Connection, task: sqlite3.Row, now: float
    ) -> WorkflowStatus | None:
        """A workflow task just became terminal: count it, release or skip dependents,
        apply the failure policy, and end the phase when nothing is left open."""
        workflow_id, step_id, status = task["workflow_id"], task["step_id"], task["status"]
        wf = _workflow_row(db, workflow_id)
        ok = status == "completed"
        db.execute(
            "UPDATE workflows SET tasks_open = tasks_open - 1,"
            " tasks_completed = tasks_completed + ?, tasks_failed = tasks_failed + ?"
            " WHERE id = ?",
            (int(ok), int(status in ("failed", "timed_out", "cancelled")), workflow_id),
        )
        if ok:
            step = db.execute(
                "UPDATE workflow_steps SET completed = completed + 1"
                " WHERE workflow_id = ? AND step_id = ? RETURNING *",
                (workflow_id, step_id),
            ).fetchone()
            if step["completed"] == step["total"] and step["failed"] == 0:
                self._step_completed(db, wf, step_id, now)
        elif status != "skipped":
            step = db.execute(
                "UPDATE workflow_steps SET failed = failed + 1, status = 'failed',"
                " finished_at = ? WHERE workflow_id = ? AND step_id = ? RETURNING *",
                (now, workflow_id, step_id),
            ).fetchone()
            if wf["failure"] is None:
                self._step_failed(db, wf, step, task, now)
        return self._maybe_end_phase(db, workflow_id, now)

    def _step_completed(
        self, db: sqlite3.Connection, wf: sqlite3.Row, step_id: str, now: float
    ) -> None:
        workflow_id = wf["id"]
        db.execute(
            "UPDATE workflow_steps SET status = 'completed', finished_at = ?"
            " WHERE workflow_id = ? AND step_id = ?",
            (now, workflow_id, step_id),
        )
        db.execute(
            "UPDATE workflows SET steps_completed = steps_completed + 1, checkpoint_at = ?"
            " WHERE id = ?",
            (now, workflow_id),
        )
        dependents = db.execute(
            "UPDATE workflow_steps SET waiting_on = waiting_on - 1"
            " WHERE workflow_id = ? AND step_id IN"
            "  (SELECT dependent_id FROM workflow_edges WHERE workflow_id = ? AND step_id = ?)"
            " RETURNING step_id, waiting_on, status",
            (workflow_id, workflow_id, step_id),
        ).fetchall()
        if wf["failure"] is not None:
            return
        for dep in dependents:
            if dep["waiting_on"] == 0 and dep["status"] == "blocked":
                db.execute(
                    "UPDATE workflow_steps SET status = 'ready'"
                    " WHERE workflow_id = ? AND step_id = ?",
                    (workflow_id, dep["step_id"]),
                )
                db.execute(
                    "UPDATE tasks SET status = 'pending', run_after = ?"
                    " WHERE workflow_id = ? AND step_id = ? AND status = 'blocked'",
                    (now, workflow_id, dep["step_id"]),
                )

    def _step_failed(
        self,
        db: sqlite3.Connection,
        wf: sqlite3.Row,
        step: sqlite3.Row,
        task: sqlite3.Row,
        now: float,
    ) -> None:
        workflow_id, step_id = wf["id"], step["step_id"]
        policy = step["on_failure"]
        if policy == "continue":
            db.execute(
                "UPDATE workflows SET error = ? WHERE id = ? AND error IS NULL",
                (f"step {step_id} {task['status']}: {task['error'] or ''}".strip(), workflow_id),
            )
            self._skip_dependents(db, workflow_id, step_id)
            return
        failure = "rollback" if policy == "rollback" and wf["phase"] == "run" else "fail"
        db.execute(
            "UPDATE workflows SET failure = ?, error = ? WHERE id = ? AND failure IS NULL",
            (
                failure,
                f"step {step_id} {task['status']}: {task['error'] or ''}".strip(),
                workflow_id,
            ),
        )
        self._close_open(db, workflow_id, "skipped", f"not started: step {step_id} failed")

    def _skip_dependents(self, db: sqlite3.Connection, workflow_id: str, step_id: str) -> None:
        queue = deque([step_id])
        seen = {step_id}
        while queue:
            current = queue.popleft()
            for row in db.execute(
                "SELECT dependent_id FROM workflow_edges WHERE workflow_id = ? AND step_id = ?",
                (workflow_id, current),
            ).fetchall():
                dependent = row["dependent_id"]
                if dependent in seen:
                    continue
                seen.add(dependent)
                queue.append(dependent)
                db.execute(
                    "UPDATE workflow_steps SET status = 'skipped', finished_at = NULL"
                    " WHERE workflow_id = ? AND step_id = ?",
                    (workflow_id, dependent),
                )
                skipped = db.execute(
                    "UPDATE tasks SET status = 'skipped', error = ?"
                    " WHERE workflow_id = ? AND step_id = ? AND status IN ('blocked', 'pending')"
                    " RETURNING id",
                    (f"skipped: it depends on failed step {step_id}", workflow_id, dependent),
                ).fetchall()
                db.execute(
                    "UPDATE workflows SET tasks_open = tasks_open - ? WHERE id = ?",
                    (len(skipped), workflow_id),
                )

    def _close_open(
        self, db: sqlite3.Connection, workflow_id: str, status: str, reason: str
    ) -> int:
        """End every task of the workflow that has not started; running ones go on."""
        closed = db.execute(
            "UPDATE tasks SET status = ?, error = ?, completed_at = NULL"
            " WHERE workflow_id = ? AND status IN ('blocked', 'pending') RETURNING step_id",
            (status, reason, workflow_id),
        ).fetchall()
        db.execute(
            "UPDATE workflow_steps SET status = ? WHERE workflow_id = ?"
            " AND status IN ('blocked', 'ready') AND completed = 0 AND failed = 0",
            (status, workflow_id),
        )
        db.execute(
            "UPDATE workflows SET tasks_open = tasks_open - ? WHERE id = ?",
            (len(closed), workflow_id),
        )
        return len(closed)

    def _maybe_end_phase(
        self, db: sqlite3.Connection, workflow_id: str, now: float
    ) -> WorkflowStatus | None:
        """End the current phase when no task of it is open; the new status, if any."""
        wf = _workflow_row(db, workflow_id)
        if wf["tasks_open"] > 0:
            return None
        failed = db.execute(
            "SELECT COUNT(*) AS n FROM workflow_steps WHERE workflow_id = ? AND kind = ?"
            " AND status IN ('failed', 'skipped', 'cancelled')",
            (workflow_id, wf["phase"]),
        ).fetchone()["n"]
        if wf["phase"] == "undo":
            status = WorkflowStatus.ROLLBACK_FAILED if failed else WorkflowStatus.ROLLED_BACK
        elif wf["failure"] == "cancel":
            status = WorkflowStatus.CANCELLED
        elif wf["failure"] == "rollback":
            status = WorkflowStatus.ROLLBACK_PENDING
        elif failed or wf["failure"] == "fail":
            status = WorkflowStatus.FAILED
        else:
            status = WorkflowStatus.COMPLETED
        finished = None if status is WorkflowStatus.ROLLBACK_PENDING else now
        db.execute(
            "UPDATE workflows SET status = ?, completed_at = ? WHERE id = ?",
            (status.value, finished, workflow_id),
        )
        return status

    # -- commands -----------------------------------------------------------------------

    def cancel_workflow(self, workflow_id: str, *, now: float) -> tuple[Workflow, list[str]] | None:
        """Cancel what has not started; flag running tasks. Returns them for a local stop."""
        with self._tx() as db:
            wf = _workflow_row(db, workflow_id)
            if wf is None:
                return None
            if WorkflowStatus(wf["status"]).finished:
                return workflow_of(wf), []
            db.execute(
                "UPDATE workflows SET failure = 'cancel', error = 'cancelled' WHERE id = ?",
                (workflow_id,),
            )
            self._close_open(db, workflow_id, "cancelled", "cancelled with its workflow")
            running = db.execute(
                "UPDATE tasks SET cancel_requested = 1 WHERE workflow_id = ? AND status = 'running'"
                " RETURNING id",
                (workflow_id,),
            ).fetchall()
            if wf["status"] == WorkflowStatus.ROLLBACK_PENDING.value:
                db.execute(
                    "UPDATE workflows SET status = 'cancelled', completed_at = ? WHERE id = ?",
                    (now, workflow_id),
                )
            else:
                self._maybe_end_phase(db, workflow_id, now)
            row = _workflow_row(db, workflow_id)
        return workflow_of(row), [r["id"] for r in running]

    def reset_workflow(self, workflow_id: str, *, now: float) -> Workflow | None:
        """Resume a finished, unsuccessful workflow from its checkpoint: tasks of the
        current phase that did not complete start again; completed ones are kept."""
        with self._tx() as db:
            wf = _workflow_row(db, workflow_id)
            if wf is None:
                return None
            phase = wf["phase"]
            reopened = db.execute(
                "UPDATE tasks SET status = 'blocked', error = NULL, tries = 0, progress = 0,"
                " cancel_requested = 0, completed_at = NULL, run_after = 0"
                " WHERE workflow_id = ? AND status != 'completed' AND step_id IN"
                "  (SELECT step_id FROM workflow_steps WHERE workflow_id = ? AND kind = ?)"
                " RETURNING id",
                (workflow_id, workflow_id, phase),
            ).fetchall()
            steps = db.execute(
                "SELECT * FROM workflow_steps WHERE workflow_id = ? AND kind = ?",
                (workflow_id, phase),
            ).fetchall()
            done = {s["step_id"] for s in steps if s["status"] == "completed"}
            failed_total = 0
            for step in steps:
                if step["step_id"] in done:
                    continue
                deps = [
                    r["step_id"]
                    for r in db.execute(
                        "SELECT step_id FROM workflow_edges"
                        " WHERE workflow_id = ? AND dependent_id = ?",
                        (workflow_id, step["step_id"]),
                    ).fetchall()
                ]
                waiting = sum(1 for d in deps if d not in done)
                db.execute(
                    "UPDATE workflow_steps SET status = ?, waiting_on = ?, failed = 0,"
                    " finished_at = NULL WHERE workflow_id = ? AND step_id = ?",
                    ("ready" if waiting == 0 else "blocked", waiting, workflow_id, step["step_id"]),
                )
                failed_total += step["failed"]
                if waiting == 0:
                    db.execute(
                        "UPDATE tasks SET status = 'pending', run_after = ?"
                        " WHERE workflow_id = ? AND step_id = ? AND status = 'blocked'",
                        (now, workflow_id, step["step_id"]),
                    )
            status = "running" if phase == "run" else WorkflowStatus.ROLLING_BACK.value
            row = db.execute(
                "UPDATE workflows SET status = ?, failure = NULL, error = NULL,"
                " completed_at = NULL, tasks_open = ?, tasks_failed = 0 WHERE id = ? RETURNING *",
                (status, len(reopened), workflow_id),
            ).fetchone()
            if not reopened:
                self._maybe_end_phase(db, workflow_id, now)
                row = _workflow_row(db, workflow_id)
        return workflow_of(row)

    def request_rollback(self, workflow_id: str) -> Workflow | None:
        """Mark a finished workflow for rollback (the engine then plans the undo steps)."""
        with self._tx() as db:
            row = db.execute(
                "UPDATE workflows SET status = 'rollback_pending' WHERE id = ?"
                " AND status IN ('completed', 'failed', 'cancelled') AND phase = 'run'"
                " RETURNING *",
                (workflow_id,),
            ).fetchone()
            if row is None:
                row = _workflow_row(db, workflow_id)
        return None if row is None else workflow_of(row)

    def begin_undo(
        self,
        workflow_id: str,
        steps: Sequence[NewStep],
        *,
        default_timeout: float,
        default_retry: RetryPolicy,
        now: float,
    ) -> Workflow | None:
        """Add the undo steps of a rollback and start it; ``None`` unless the workflow
        was waiting for exactly that (so a repeated call changes nothing)."""
        with self._tx() as db:
            wf = db.execute(
                f"SELECT {WF} FROM workflows WHERE id = ? AND status = 'rollback_pending'",
                (workflow_id,),
            ).fetchone()
            if wf is None:
                return None
            count = self._insert_steps(
                db,
                workflow_id,
                steps,
                priority=wf["priority"],
                default_timeout=default_timeout,
                default_retry=default_retry,
                now=now,
            )
            row = db.execute(
                "UPDATE workflows SET phase = 'undo', status = ?, failure = NULL,"
                " tasks_open = ?, tasks_total = tasks_total + ?, completed_at = NULL"
                " WHERE id = ? RETURNING *",
                (WorkflowStatus.ROLLING_BACK.value, count, count, workflow_id),
            ).fetchone()
            if count == 0:
                self._maybe_end_phase(db, workflow_id, now)
                row = _workflow_row(db, workflow_id)
        return workflow_of(row)
