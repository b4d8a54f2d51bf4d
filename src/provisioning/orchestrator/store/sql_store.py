"""The task queue verbs of both SQL stores (SQLite, PostgreSQL), over the named queries
of ``sql/queue.sql``; with the workflow verbs and the reads, one implementation.

Every verb is one transaction; a verb that changes an attempt is fenced by
``(task_id, attempt)``: the task's row is read (PostgreSQL locks it) and must still be
running that attempt, so a late answer from an attempt that was taken over changes
nothing. What differs per dialect is how a claim picks (SQLite under its single writer,
PostgreSQL with ``FOR UPDATE SKIP LOCKED``), the connection and the hooks of
:class:`~.sql_workflow.SqlWorkflowVerbs`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any, Unpack

from ...execution import ProcessInfo
from ...tasks import NewTask, Outcome, TaskStatus
from .. import flow
from ..models import Claim, Task
from ..models.records import claims_of, task_of
from .base import Ending, Enqueued, Heartbeat, ending_terms
from .reads import Reads
from .rows import new_task_values
from .sql_dialect import one, verb
from .sql_retention import SqlRetention
from .sql_workflow import SqlWorkflowVerbs


class SqlStore(SqlWorkflowVerbs, SqlRetention, Reads):
    """The verbs both SQL stores share; a subclass gives the connection and the claim."""

    shared: bool
    # Whether a transaction locks the rows it reads (PostgreSQL); SQLite has one writer.
    row_locks = False

    def _text(self, value: str | None) -> str | None:
        """Text as the database can keep it."""
        return value

    def _array(self, values: Sequence[Any]) -> Any:
        """A list as one query parameter (PostgreSQL takes it as an array)."""
        return json.dumps(list(values))

    def _slot_freed(self, db: object, workflow_id: str) -> None:
        """A task of ``workflow_id`` ended: one of its ``parallel_limit`` slots is free."""

    @verb
    def enqueue(self, task: NewTask, **options: Unpack[Enqueued]) -> Task:
        values = new_task_values(task, status=TaskStatus.PENDING.value, **options)
        with self._tx() as db:
            row = self._q(db, "insert_task", *values).fetchone()
            self._work_released(db)
        return task_of(one(row))

    @verb
    def claim(self, node_id: str, limit: int, *, now: float, lease_seconds: float) -> list[Claim]:
        if limit <= 0:
            return []
        # A claim lost in an OS crash is harmless on one node: no process of ours is left.
        with self._tx(durable=self.shared) as db:
            seqs = self._pick_ready(db, limit, now)
            if not seqs:
                return []
            lease = now + lease_seconds
            cursor = self._q(db, "claim_tasks", node_id, lease, now, self._array(seqs))
            rows = cursor.fetchall()
            attempts = [(row["id"], row["attempt"], node_id, now) for row in rows]
            self._many(db, self._queries["insert_attempt"], attempts)
            workflows = sorted({row["workflow_id"] for row in rows if row["workflow_id"]})
            if workflows:
                self._q(db, "start_workflows", now, self._array(workflows))
        return claims_of(rows)

    def _pick_ready(self, db: Any, limit: int, now: float) -> list[int]:
        """The seqs of the tasks to claim (:func:`flow.pick_ready`), the dialect saying
        how it learns the workflows' free slots and locks what it picks."""
        rounds = 0

        def candidates(full: list[str], tried: list[int], scan: int) -> list[tuple[int, Any]]:
            nonlocal rounds
            rounds += 1
            args = (now, self._array(full), self._array(tried), scan)
            rows = self._q(db, "ready_candidates", *args).fetchall()
            return [(row["seq"], row["workflow_id"]) for row in rows]

        def limits_of(ids: list[str]) -> dict[str, int | None]:
            return self._free_slots(db, ids, wait=rounds == 1)

        room = self._room(db)
        return flow.pick_ready(limit, room, candidates, limits_of, self._lock_ready(db, now))

    def _room(self, db: Any) -> dict[str, int]:
        """The free slots of the workflows with running tasks (under SQLite's single
        writer: nothing to lock)."""
        rows = self._q(db, "running_per_workflow").fetchall()
        return {row["workflow_id"]: row["free"] for row in rows}

    def _free_slots(self, db: Any, ids: list[str], *, wait: bool) -> dict[str, int | None]:
        """The free slots of workflows with no running task (``None``: another
        transaction holds it; ``wait``: wait for it instead)."""
        rows = self._q(db, "parallel_limits", self._array(ids)).fetchall()
        return {row["id"]: row["parallel_limit"] for row in rows}

    def _lock_ready(self, db: Any, now: float) -> Callable[[list[int]], set[int]] | None:
        """How chosen tasks are locked against other claimers (SQLite: no need)."""
        return None

    @verb
    def record_process(self, task_id: str, attempt: int, process: ProcessInfo) -> None:
        # Lost in an OS crash only when no process of ours survived it either.
        with self._tx(durable=self.shared) as db:
            group = (process.pid, process.pgid, process.start_ticks, process.boot_id)
            self._q(db, "record_process", *group, task_id, attempt)

    @verb
    def heartbeat(self, node_id: str, **beat: Unpack[Heartbeat]) -> set[str]:
        now, lease_seconds, held = beat["now"], beat["lease_seconds"], beat.get("held")
        with self._tx(durable=self.shared) as db:
            self._q(db, "touch_node", now, node_id)
            if held is None:
                rows = self._q(db, "extend_leases", now + lease_seconds, node_id).fetchall()
            else:
                ids = json.dumps(sorted(held))
                lease = now + lease_seconds
                rows = self._q(db, "extend_held_leases", lease, node_id, ids).fetchall()
        return {row["id"] for row in rows if row["cancel_requested"]}

    @verb
    def register_node(
        self, node_id: str, *, host: str, pid: int, max_concurrent: int, now: float
    ) -> None:
        with self._tx() as db:
            self._q(db, "register_node", node_id, host, pid, max_concurrent, now, now)

    @verb
    def deregister_node(self, node_id: str) -> None:
        with self._tx() as db:
            self._q(db, "deregister_node", node_id)

    @verb
    def record_progress(
        self, task_id: str, progress: int, message: str | None, *, attempt: int | None = None
    ) -> Task | None:
        text = self._text(message)
        with self._tx(durable=False) as db:
            if attempt is None:
                row = self._q(db, "record_progress", progress, text, task_id).fetchone()
            else:
                cursor = self._q(db, "record_progress_of_attempt", progress, text, task_id, attempt)
                row = cursor.fetchone()
        return None if row is None else task_of(row)

    @verb
    def append_logs(
        self, task_id: str, attempt: int, lines: Sequence[tuple[str, str, float]]
    ) -> None:
        if not lines:
            return
        rows = [(task_id, attempt, stream, self._text(line), ts) for stream, line, ts in lines]
        with self._tx(durable=False) as db:
            # Fenced like finish: lines of an attempt that was settled (taken over, or
            # recorded) are dropped. The row lock orders this against that finish.
            current = self._q(db, "lock_task", task_id).fetchone()
            if current is None or current["status"] != "running" or current["attempt"] != attempt:
                return
            self._many(db, self._queries["append_log"], rows)

    def _lock_task_workflow(self, db: object, task_id: str) -> None:
        """Lock the row of the task's workflow, if it has one, before the task's own:
        every transaction changing a workflow locks it first (a task never changes
        workflow, so reading which one needs no lock)."""
        if not self.row_locks:
            return
        row = self._q(db, "task_workflow", task_id).fetchone()
        if row is not None and row["workflow_id"] is not None:
            self._q(db, "lock_workflow", row["workflow_id"])

    @verb
    def finish(
        self, task_id: str, attempt: int, outcome: Outcome, **ending: Unpack[Ending]
    ) -> Task | None:
        now, retry_at, counts = ending_terms(ending)
        result_json = json.dumps(outcome.result) if outcome.has_result else None
        error = self._text(outcome.error)
        with self._tx() as db:
            self._lock_task_workflow(db, task_id)
            current = self._q(db, "lock_task", task_id).fetchone()
            if current is None or current["status"] != "running" or current["attempt"] != attempt:
                return None
            ended = self._q(
                db,
                "end_attempt",
                outcome.status.value,
                now,
                outcome.exit_code,
                error,
                task_id,
                attempt,
            )
            if not ended.rowcount:
                return None
            end = flow.task_ending(outcome.status, now=now, retry_at=retry_at, counts=counts)
            if end.run_after is not None:
                cursor = self._q(db, "retry_task", end.run_after, error, end.tries_back, task_id)
                row = one(cursor.fetchone())
                self._work_released(db)
                return task_of(row)
            args = (end.status.value, end.completed_at, error, result_json, end.progress, task_id)
            cursor = self._q(db, "end_task", *args)
            row = one(cursor.fetchone())
            if row["workflow_id"] is None:
                return task_of(row)
            moved = self._advance(db, row, now)
            self._slot_freed(db, row["workflow_id"])
        return replace(task_of(row), workflow_status=moved)

    @verb
    def request_cancel(self, task_id: str, *, now: float) -> Task | None:
        with self._tx() as db:
            self._lock_task_workflow(db, task_id)
            row = self._q(db, "cancel_unstarted", now, task_id).fetchone()
            if row is not None and row["workflow_id"] is not None:
                moved = self._advance(db, row, now)
                return replace(task_of(row), workflow_status=moved)
            if row is None:
                row = self._q(db, "flag_cancel", task_id).fetchone()
            if row is None:
                row = self._q(db, "task", task_id).fetchone()
        return None if row is None else task_of(row)
