"""Workflow verbs of the PostgreSQL backend: creation, progression, cancel, retry, undo.

The same verbs and semantics as :mod:`.sqlite_workflow`. Progression runs inside the
transaction that ends a task, so a finished step releases its dependents atomically
with its own completion. Several nodes may end tasks of one workflow at the same
moment: every transaction that changes a workflow's counters, steps or not-yet-started
tasks first locks the workflow's row (``SELECT ... FOR UPDATE``), so those transactions
run one after the other and each sees the counters the previous one committed.
"""

from __future__ import annotations

import functools
import json
import logging
import threading
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any, Concatenate, ParamSpec, TypeVar

import psycopg
import psycopg.errors

from ...tasks import Priority, RetryPolicy, WorkflowStatus
from ..models import NewStep, Workflow
from .base import StoreError
from .rows import NEW_TASK_COLUMNS, markers, new_task_values, workflow_of
from .sql_reads import WF

Row = dict[str, Any]
Conn = psycopg.Connection[Row]

log = logging.getLogger("provisioning.orchestrator.store.postgres")

# The channel a transaction that makes tasks claimable notifies (delivered at commit).
WORK_CHANNEL = "provisioning_work"


# A verb that lost a deadlock (PostgreSQL aborts one of the transactions) runs again.
DEADLOCK_RETRIES = 3

P = ParamSpec("P")
R = TypeVar("R")
S = TypeVar("S", bound="PostgresWorkflowVerbs")


def retry_deadlocks(method: Callable[Concatenate[S, P], R]) -> Callable[Concatenate[S, P], R]:
    """Run a verb again when PostgreSQL aborted its transaction to break a deadlock
    (nothing of it was kept). Inside run_batch the error goes up instead: the batch
    rolls the verb back to its savepoint and runs it on its own after the commit."""

    @functools.wraps(method)
    def wrapper(self: S, /, *args: P.args, **kwargs: P.kwargs) -> R:
        for _ in range(DEADLOCK_RETRIES):
            try:
                return method(self, *args, **kwargs)
            except psycopg.errors.DeadlockDetected:
                if self._batch_thread == threading.get_ident():
                    raise
                log.warning("%s lost a deadlock; running it again", method.__name__)
        return method(self, *args, **kwargs)

    return wrapper


def one(row: Row | None) -> Row:
    """The row a statement must have returned."""
    if row is None:
        raise StoreError("the database returned no row where one was expected")
    return row


def notify_work(db: Conn) -> None:
    """Tell idle nodes that tasks became claimable (sent when the transaction commits;
    several in one transaction are folded into one)."""
    db.execute(f"NOTIFY {WORK_CHANNEL}")


def lock_workflow(db: Conn, workflow_id: str) -> Row | None:
    """Lock a workflow's row for the rest of the transaction (and read it)."""
    return db.execute(
        f"SELECT {WF} FROM workflows WHERE id = %s FOR UPDATE", (workflow_id,)
    ).fetchone()


def _workflow_row(db: Conn, workflow_id: str) -> Row | None:
    return db.execute(f"SELECT {WF} FROM workflows WHERE id = %s", (workflow_id,)).fetchone()


class PostgresWorkflowVerbs:
    """Mixed into :class:`~.postgres.PostgresStore`."""

    # The thread running run_batch, while it does.
    _batch_thread: int | None = None

    def _tx(self, durable: bool = True) -> AbstractContextManager[Conn]:
        raise NotImplementedError

    def _query(self, sql: str, args: Sequence[Any] = ()) -> list[Row]:
        raise NotImplementedError

    # -- creation -----------------------------------------------------------------------

    def _insert_steps(
        self,
        db: Conn,
        workflow_id: str,
        steps: Sequence[NewStep],
        *,
        priority: int,
        default_timeout: float,
        default_retry: RetryPolicy,
        now: float,
    ) -> tuple[int, int]:
        """Insert steps, their edges and tasks; ``(tasks, of them pending)``."""
        count = 0
        pending = 0
        step_rows = []
        edge_rows: list[tuple[str, str, str]] = []
        task_rows = []
        for step in steps:
            waiting = len(step.depends_on)
            status = "ready" if waiting == 0 else "blocked"
            step_rows.append(
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
                )
            )
            edge_rows.extend((workflow_id, dep, step.step_id) for dep in step.depends_on)
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
                pending += waiting == 0
        with db.cursor() as cur:
            cur.executemany(
                "INSERT INTO workflow_steps (workflow_id, step_id, kind, position, layer,"
                " on_failure, status, waiting_on, total) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s)",
                step_rows,
            )
            if edge_rows:
                cur.executemany(
                    "INSERT INTO workflow_edges (workflow_id, step_id, dependent_id)"
                    " VALUES (%s,%s,%s)",
                    edge_rows,
                )
            if task_rows:
                cur.executemany(
                    f"INSERT INTO tasks ({NEW_TASK_COLUMNS}) VALUES ({markers('%s')})",
                    task_rows,
                )
        if pending:
            notify_work(db)
        return count, pending

    @retry_deadlocks
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
                " parallel_limit, rollback_enabled, created_at)"
                " VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s)",
                (
                    workflow_id,
                    name,
                    version,
                    json.dumps(spec),
                    WorkflowStatus.QUEUED.value,
                    prio,
                    parallel_limit,
                    bool(rollback_enabled),
                    now,
                ),
            )
            count, _ = self._insert_steps(
                db,
                workflow_id,
                steps,
                priority=prio,
                default_timeout=default_timeout,
                default_retry=default_retry,
                now=now,
            )
            row = db.execute(
                f"UPDATE workflows SET tasks_total = %s, tasks_open = %s WHERE id = %s"
                f" RETURNING {WF}",
                (count, count, workflow_id),
            ).fetchone()
        return workflow_of(one(row))

    # -- progression (inside the finishing transaction, the workflow row locked) ---------

    def _advance(self, db: Conn, task: Row, now: float) -> WorkflowStatus | None:
        """A workflow task just became terminal: count it, release or skip dependents,
        apply the failure policy, and end the phase when nothing is left open.
        The caller holds the workflow's row lock."""
        workflow_id, step_id, status = task["workflow_id"], task["step_id"], task["status"]
        wf = one(_workflow_row(db, workflow_id))
        ok = status == "completed"
        db.execute(
            "UPDATE workflows SET tasks_open = tasks_open - 1,"
            " tasks_completed = tasks_completed + %s, tasks_failed = tasks_failed + %s"
            " WHERE id = %s",
            (int(ok), int(status in ("failed", "timed_out", "cancelled")), workflow_id),
        )
        if ok:
            step = one(
                db.execute(
                    "UPDATE workflow_steps SET completed = completed + 1"
                    " WHERE workflow_id = %s AND step_id = %s RETURNING *",
                    (workflow_id, step_id),
                ).fetchone()
            )
            if step["completed"] == step["total"] and step["failed"] == 0:
                self._step_completed(db, wf, step_id, now)
        elif status != "skipped":
            step = one(
                db.execute(
                    "UPDATE workflow_steps SET failed = failed + 1, status = 'failed',"
                    " finished_at = %s WHERE workflow_id = %s AND step_id = %s RETURNING *",
                    (now, workflow_id, step_id),
                ).fetchone()
            )
            if wf["failure"] is None:
                self._step_failed(db, wf, step, task, now)
        return self._maybe_end_phase(db, workflow_id, now)

    def _step_completed(self, db: Conn, wf: Row, step_id: str, now: float) -> None:
        workflow_id = wf["id"]
        db.execute(
            "UPDATE workflow_steps SET status = 'completed', finished_at = %s"
            " WHERE workflow_id = %s AND step_id = %s",
            (now, workflow_id, step_id),
        )
        db.execute(
            "UPDATE workflows SET steps_completed = steps_completed + 1, checkpoint_at = %s"
            " WHERE id = %s",
            (now, workflow_id),
        )
        dependents = db.execute(
            "UPDATE workflow_steps SET waiting_on = waiting_on - 1"
            " WHERE workflow_id = %s AND step_id IN"
            "  (SELECT dependent_id FROM workflow_edges WHERE workflow_id = %s AND step_id = %s)"
            " RETURNING step_id, waiting_on, status",
            (workflow_id, workflow_id, step_id),
        ).fetchall()
        if wf["failure"] is not None:
            return
        released = 0
        for dep in dependents:
            if dep["waiting_on"] == 0 and dep["status"] == "blocked":
                db.execute(
                    "UPDATE workflow_steps SET status = 'ready'"
                    " WHERE workflow_id = %s AND step_id = %s",
                    (workflow_id, dep["step_id"]),
                )
                released += db.execute(
                    "UPDATE tasks SET status = 'pending', run_after = %s"
                    " WHERE workflow_id = %s AND step_id = %s AND status = 'blocked'",
                    (now, workflow_id, dep["step_id"]),
                ).rowcount
        if released:
            notify_work(db)

    def _step_failed(self, db: Conn, wf: Row, step: Row, task: Row, now: float) -> None:
        workflow_id, step_id = wf["id"], step["step_id"]
        policy = step["on_failure"]
        if policy == "continue":
            db.execute(
                "UPDATE workflows SET error = %s WHERE id = %s AND error IS NULL",
                (f"step {step_id} {task['status']}: {task['error'] or ''}".strip(), workflow_id),
            )
            self._skip_dependents(db, workflow_id, step_id)
            return
        failure = "rollback" if policy == "rollback" and wf["phase"] == "run" else "fail"
        db.execute(
            "UPDATE workflows SET failure = %s, error = %s WHERE id = %s AND failure IS NULL",
            (
                failure,
                f"step {step_id} {task['status']}: {task['error'] or ''}".strip(),
                workflow_id,
            ),
        )
        self._close_open(db, workflow_id, "skipped", f"not started: step {step_id} failed")

    def _skip_dependents(self, db: Conn, workflow_id: str, step_id: str) -> None:
        queue = deque([step_id])
        seen = {step_id}
        while queue:
            current = queue.popleft()
            for row in db.execute(
                "SELECT dependent_id FROM workflow_edges WHERE workflow_id = %s AND step_id = %s",
                (workflow_id, current),
            ).fetchall():
                dependent = row["dependent_id"]
                if dependent in seen:
                    continue
                seen.add(dependent)
                queue.append(dependent)
                db.execute(
                    "UPDATE workflow_steps SET status = 'skipped', finished_at = NULL"
                    " WHERE workflow_id = %s AND step_id = %s",
                    (workflow_id, dependent),
                )
                skipped = db.execute(
                    "UPDATE tasks SET status = 'skipped', error = %s"
                    " WHERE workflow_id = %s AND step_id = %s AND status IN ('blocked', 'pending')",
                    (f"skipped: it depends on failed step {step_id}", workflow_id, dependent),
                ).rowcount
                db.execute(
                    "UPDATE workflows SET tasks_open = tasks_open - %s WHERE id = %s",
                    (skipped, workflow_id),
                )

    def _close_open(self, db: Conn, workflow_id: str, status: str, reason: str) -> int:
        """End every task of the workflow that has not started; running ones go on."""
        closed = db.execute(
            "UPDATE tasks SET status = %s, error = %s, completed_at = NULL"
            " WHERE workflow_id = %s AND status IN ('blocked', 'pending')",
            (status, reason, workflow_id),
        ).rowcount
        db.execute(
            "UPDATE workflow_steps SET status = %s WHERE workflow_id = %s"
            " AND status IN ('blocked', 'ready') AND completed = 0 AND failed = 0",
            (status, workflow_id),
        )
        db.execute(
            "UPDATE workflows SET tasks_open = tasks_open - %s WHERE id = %s",
            (closed, workflow_id),
        )
        return closed

    def _maybe_end_phase(self, db: Conn, workflow_id: str, now: float) -> WorkflowStatus | None:
        """End the current phase when no task of it is open; the new status, if any."""
        wf = one(_workflow_row(db, workflow_id))
        if wf["tasks_open"] > 0:
            return None
        failed = one(
            db.execute(
                "SELECT COUNT(*) AS n FROM workflow_steps WHERE workflow_id = %s AND kind = %s"
                " AND status IN ('failed', 'skipped', 'cancelled')",
                (workflow_id, wf["phase"]),
            ).fetchone()
        )["n"]
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
            "UPDATE workflows SET status = %s, completed_at = %s WHERE id = %s",
            (status.value, finished, workflow_id),
        )
        return status

    # -- commands -----------------------------------------------------------------------

    @retry_deadlocks
    def cancel_workflow(self, workflow_id: str, *, now: float) -> tuple[Workflow, list[str]] | None:
        """Cancel what has not started; flag running tasks. Returns them for a local stop."""
        with self._tx() as db:
            wf = lock_workflow(db, workflow_id)
            if wf is None:
                return None
            if WorkflowStatus(wf["status"]).finished:
                return workflow_of(wf), []
            db.execute(
                "UPDATE workflows SET failure = 'cancel', error = 'cancelled' WHERE id = %s",
                (workflow_id,),
            )
            self._close_open(db, workflow_id, "cancelled", "cancelled with its workflow")
            running = db.execute(
                "UPDATE tasks SET cancel_requested = TRUE"
                " WHERE workflow_id = %s AND status = 'running' RETURNING id, seq",
                (workflow_id,),
            ).fetchall()
            if wf["status"] == WorkflowStatus.ROLLBACK_PENDING.value:
                db.execute(
                    "UPDATE workflows SET status = 'cancelled', completed_at = %s WHERE id = %s",
                    (now, workflow_id),
                )
            else:
                self._maybe_end_phase(db, workflow_id, now)
            row = one(_workflow_row(db, workflow_id))
        running.sort(key=lambda r: r["seq"])
        return workflow_of(row), [r["id"] for r in running]

    @retry_deadlocks
    def reset_workflow(self, workflow_id: str, *, now: float) -> Workflow | None:
        """Resume a finished, unsuccessful workflow from its checkpoint: tasks of the
        current phase that did not complete start again; completed ones are kept."""
        with self._tx() as db:
            wf = lock_workflow(db, workflow_id)
            if wf is None:
                return None
            phase = wf["phase"]
            reopened = db.execute(
                "UPDATE tasks SET status = 'blocked', error = NULL, tries = 0, progress = 0,"
                " cancel_requested = FALSE, completed_at = NULL, run_after = 0"
                " WHERE workflow_id = %s AND status != 'completed' AND step_id IN"
                "  (SELECT step_id FROM workflow_steps WHERE workflow_id = %s AND kind = %s)",
                (workflow_id, workflow_id, phase),
            ).rowcount
            steps = db.execute(
                "SELECT * FROM workflow_steps WHERE workflow_id = %s AND kind = %s",
                (workflow_id, phase),
            ).fetchall()
            done = {s["step_id"] for s in steps if s["status"] == "completed"}
            released = 0
            for step in steps:
                if step["step_id"] in done:
                    continue
                deps = [
                    r["step_id"]
                    for r in db.execute(
                        "SELECT step_id FROM workflow_edges"
                        " WHERE workflow_id = %s AND dependent_id = %s",
                        (workflow_id, step["step_id"]),
                    ).fetchall()
                ]
                waiting = sum(1 for d in deps if d not in done)
                db.execute(
                    "UPDATE workflow_steps SET status = %s, waiting_on = %s, failed = 0,"
                    " finished_at = NULL WHERE workflow_id = %s AND step_id = %s",
                    ("ready" if waiting == 0 else "blocked", waiting, workflow_id, step["step_id"]),
                )
                if waiting == 0:
                    released += db.execute(
                        "UPDATE tasks SET status = 'pending', run_after = %s"
                        " WHERE workflow_id = %s AND step_id = %s AND status = 'blocked'",
                        (now, workflow_id, step["step_id"]),
                    ).rowcount
            if released:
                notify_work(db)
            status = "running" if phase == "run" else WorkflowStatus.ROLLING_BACK.value
            row = one(
                db.execute(
                    "UPDATE workflows SET status = %s, failure = NULL, error = NULL,"
                    " completed_at = NULL, tasks_open = %s, tasks_failed = 0 WHERE id = %s"
                    f" RETURNING {WF}",
                    (status, reopened, workflow_id),
                ).fetchone()
            )
            if not reopened:
                self._maybe_end_phase(db, workflow_id, now)
                row = one(_workflow_row(db, workflow_id))
        return workflow_of(row)

    @retry_deadlocks
    def request_rollback(self, workflow_id: str) -> Workflow | None:
        """Mark a finished workflow for rollback (the engine then plans the undo steps)."""
        with self._tx() as db:
            row = db.execute(
                "UPDATE workflows SET status = 'rollback_pending' WHERE id = %s"
                " AND status IN ('completed', 'failed', 'cancelled') AND phase = 'run'"
                f" RETURNING {WF}",
                (workflow_id,),
            ).fetchone()
            if row is None:
                row = _workflow_row(db, workflow_id)
        return None if row is None else workflow_of(row)

    @retry_deadlocks
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
            wf = lock_workflow(db, workflow_id)
            if wf is None or wf["status"] != WorkflowStatus.ROLLBACK_PENDING.value:
                return None
            count, _ = self._insert_steps(
                db,
                workflow_id,
                steps,
                priority=wf["priority"],
                default_timeout=default_timeout,
                default_retry=default_retry,
                now=now,
            )
            row = one(
                db.execute(
                    "UPDATE workflows SET phase = 'undo', status = %s, failure = NULL,"
                    " tasks_open = %s, tasks_total = tasks_total + %s, completed_at = NULL"
                    f" WHERE id = %s RETURNING {WF}",
                    (WorkflowStatus.ROLLING_BACK.value, count, count, workflow_id),
                ).fetchone()
            )
            if count == 0:
                self._maybe_end_phase(db, workflow_id, now)
                row = one(_workflow_row(db, workflow_id))
        return workflow_of(row)
