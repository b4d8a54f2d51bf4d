"""SQLite backend (the default; the seed's ``filesystem``): one WAL file in ``data_dir``.

This module and the ``sql/sqlite`` migrations are the only SQLite-speaking code.
One connection serves every verb under a lock; each write is one
``BEGIN IMMEDIATE`` transaction committed with ``synchronous=FULL``, so a verb
that returned is on disk.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import replace
from importlib import resources
from pathlib import Path
from typing import Any

from ...execution import ProcessInfo
from ...tasks import AttemptStatus, NewTask, Outcome, RetryPolicy, TaskStatus
from ..models import Attempt, Claim, Task
from .base import StoreError
from .faults import classify
from .rows import NEW_TASK_COLUMNS, attempt_of, markers, new_task_values, task_of
from .sql_reads import SqlReads
from .sql_retention import SqlRetention
from .sqlite_workflow import WorkflowVerbs

_TERMINAL_FOR = {
    AttemptStatus.COMPLETED: TaskStatus.COMPLETED,
    AttemptStatus.FAILED: TaskStatus.FAILED,
    AttemptStatus.CANCELLED: TaskStatus.CANCELLED,
    AttemptStatus.TIMED_OUT: TaskStatus.TIMED_OUT,
    AttemptStatus.INTERRUPTED: TaskStatus.FAILED,
    AttemptStatus.LOST: TaskStatus.FAILED,
}


def _migrations() -> list[tuple[int, str]]:
    folder = resources.files("provisioning.orchestrator.store") / "sql" / "sqlite"
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            found.append((int(entry.name.split("_", 1)[0]), entry.read_text(encoding="utf-8")))
    return sorted(found)


def open_sqlite(path: Path) -> SQLiteStore:
    """Open, check and migrate the database; a file that is not one, a damaged one or
    one that cannot be written is a :class:`StoreError` saying which and what to do."""
    try:
        store = SQLiteStore(path)
        problems = [row[0] for row in store._query("PRAGMA quick_check")]
        if problems != ["ok"]:
            store.close()
            raise StoreError(
                f"{path} is damaged ({'; '.join(problems[:3])}): restore it from a backup, "
                "or move it (and its -wal file) aside to start with an empty queue"
            )
        store.migrate()
    except sqlite3.DatabaseError as exc:
        text = str(exc)
        if "readonly" in text or "unable to open" in text or "read-only" in text:
            raise StoreError(
                f"{path}: cannot write it ({text}): the data dir must be writable by the "
                "orchestrator (check its permissions and that its filesystem is not read-only)"
            ) from None
        raise StoreError(
            f"{path} is not a usable orchestrator database ({text}): restore it from a "
            "backup, or move it (and its -wal file) aside to start with an empty queue"
        ) from None
    return store


class SQLiteStore(WorkflowVerbs, SqlReads, SqlRetention):
    """The :class:`~.base.Store` on one SQLite file (or ``:memory:``)."""

    backend = "sqlite"
    shared = False

    def __init__(self, path: Path | str) -> None:
        self.path = str(path)
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open SQLite database {self.path}: {exc}") from None
        self._db.row_factory = sqlite3.Row
        self._lock = threading.RLock()
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._durable = True
        self._batching = False
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.execute("PRAGMA busy_timeout=10000")
        self._version = 0

    @contextmanager
    def _tx(self, durable: bool = True) -> Iterator[sqlite3.Connection]:
        """One write transaction. ``durable=False`` skips the fsync at commit: only for
        changes whose loss in an OS crash is harmless (claims, progress, logs: after a
        reboot no process of ours is alive, so the task simply runs again)."""
        with self._lock:
            if self._batching:
                # Inside run_batch: a savepoint, so a failing verb undoes only itself.
                self._db.execute("SAVEPOINT verb")
                try:
                    yield self._db
                except BaseException:
                    if self._db.in_transaction:
                        self._db.execute("ROLLBACK TO verb")
                        self._db.execute("RELEASE verb")
                    raise
                self._db.execute("RELEASE verb")
                return
            self._sync(durable)
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
                self._db.execute("COMMIT")
            except BaseException:
                self._rollback()
                raise

    def _rollback(self) -> None:
        # SQLite may have rolled back already (a full disk does): then there is
        # nothing to undo, and ROLLBACK itself would fail.
        if self._db.in_transaction:
            with suppress(sqlite3.Error):
                self._db.execute("ROLLBACK")

    def _sync(self, durable: bool) -> None:
        if durable != self._durable:
            self._db.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
            self._durable = durable

    def run_batch(self, calls: Sequence[Callable[[], Any]]) -> list[tuple[bool, Any]]:
        """Run several verbs in one durable transaction (group commit); each result is
        ``(True, value)`` or ``(False, exception)``. Nothing is reported before the
        commit: if it fails, every verb fails."""
        with self._lock:
            self._sync(True)
            self._db.execute("BEGIN IMMEDIATE")
            self._batching = True
            outcomes: list[tuple[bool, Any]] = []
            try:
                for call in calls:
                    try:
                        outcomes.append((True, call()))
                    except Exception as exc:
                        outcomes.append((False, exc))
                        if not self._db.in_transaction:
                            # SQLite rolled the whole batch back (disk full, I/O error):
                            # nothing of it stands, so every verb fails.
                            return [(False, classify(exc))] * len(calls)
            finally:
                self._batching = False
            try:
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                error = classify(exc)
                if not isinstance(error, StoreError):
                    error = StoreError(f"commit failed: {exc}")
                return [(False, error) for _ in calls]
        return outcomes

    def _query(self, sql: str, args: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    # -- schema -------------------------------------------------------------------------

    def migrate(self) -> int:
        with self._tx() as db:
            db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = db.execute("SELECT MAX(version) AS v FROM schema_version").fetchone()
            current = row["v"] or 0
            for version, script in _migrations():
                if version > current:
                    for statement in script.split(";\n"):
                        if statement.strip():
                            db.execute(statement)
                    db.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
                    current = version
        self._version = current
        return current

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def dump(self) -> dict[str, list[dict[str, Any]]]:
        """Every row of every table, for ``migrate-store`` (read in one transaction)."""
        tables = ("tasks", "attempts", "task_logs", "workflows", "workflow_steps", "workflow_edges")
        with self._lock:
            self._db.execute("BEGIN")
            try:
                return {
                    table: [dict(row) for row in self._db.execute(f"SELECT * FROM {table}")]
                    for table in tables
                }
            finally:
                self._db.execute("COMMIT")

    def meta(self) -> dict[str, Any]:
        return {"backend": self.backend, "path": self.path, "schema_version": self._version}

    # -- queue --------------------------------------------------------------------------

    def enqueue(
        self,
        task: NewTask,
        *,
        default_timeout: float,
        default_retry: RetryPolicy,
        now: float,
        workflow_id: str | None = None,
    ) -> Task:
        values = new_task_values(
            task,
            status=TaskStatus.PENDING.value,
            default_timeout=default_timeout,
            default_retry=default_retry,
            now=now,
            workflow_id=workflow_id,
        )
        with self._tx() as db:
            row = db.execute(
                f"INSERT INTO tasks ({NEW_TASK_COLUMNS}) VALUES ({markers('?')}) RETURNING *",
                values,
            ).fetchone()
        return task_of(row)

    def claim(self, node_id: str, limit: int, *, now: float, lease_seconds: float) -> list[Claim]:
        if limit <= 0:
            return []
        with self._tx(durable=False) as db:
            seqs = self._pick_ready(db, limit, now)
            if not seqs:
                return []
            marks = ",".join("?" * len(seqs))
            rows = db.execute(
                "UPDATE tasks SET status = 'running', attempt = attempt + 1, tries = tries + 1,"
                " owner = ?, lease_expires_at = ?, started_at = COALESCE(started_at, ?),"
                " progress = 0, progress_message = NULL"
                f" WHERE seq IN ({marks}) RETURNING *",
                (node_id, now + lease_seconds, now, *seqs),
            ).fetchall()
            db.executemany(
                "INSERT INTO attempts (task_id, number, node_id, status, started_at)"
                " VALUES (?, ?, ?, 'running', ?)",
                [(row["id"], row["attempt"], node_id, now) for row in rows],
            )
            workflows = {row["workflow_id"] for row in rows if row["workflow_id"]}
            for workflow_id in workflows:
                db.execute(
                    "UPDATE workflows SET status = 'running', started_at = ?"
                    " WHERE id = ? AND status = 'queued'",
                    (now, workflow_id),
                )
        # RETURNING does not keep the pick order.
        claims = [Claim(task=task_of(row), attempt=row["attempt"]) for row in rows]
        claims.sort(key=lambda c: (-c.task.priority, c.task.seq))
        return claims

    def _pick_ready(self, db: sqlite3.Connection, limit: int, now: float) -> list[int]:
        """Ready tasks by priority then FIFO, within each workflow's ``parallel_limit``."""
        room: dict[str, int] = {
            row["workflow_id"]: row["parallel_limit"] - row["running"]
            for row in db.execute(
                "SELECT t.workflow_id, w.parallel_limit, COUNT(*) AS running FROM tasks t"
                " JOIN workflows w ON w.id = t.workflow_id"
                " WHERE t.status = 'running' GROUP BY t.workflow_id"
            )
        }
        picked: list[int] = []
        scan = limit * 4 + 16
        for _ in range(8):
            full = [wf for wf, free in room.items() if free <= 0]
            exclude = (
                f" AND (workflow_id IS NULL OR workflow_id NOT IN ({','.join('?' * len(full))}))"
            )
            candidates = db.execute(
                "SELECT seq, workflow_id FROM tasks WHERE status = 'pending' AND run_after <= ?"
                + (exclude if full else "")
                + (f" AND seq NOT IN ({','.join('?' * len(picked))})" if picked else "")
                + " ORDER BY priority DESC, seq LIMIT ?",
                (now, *full, *picked, scan),
            ).fetchall()
            for row in candidates:
                workflow_id = row["workflow_id"]
                if workflow_id is not None:
                    if workflow_id not in room:
                        room[workflow_id] = db.execute(
                            "SELECT parallel_limit FROM workflows WHERE id = ?", (workflow_id,)
                        ).fetchone()["parallel_limit"]
                    if room[workflow_id] <= 0:
                        continue
                    room[workflow_id] -= 1
                picked.append(row["seq"])
                if len(picked) == limit:
                    return picked
            if len(candidates) < scan:
                break
        return picked

    def record_process(self, task_id: str, attempt: int, process: ProcessInfo) -> None:
        with self._tx(durable=False) as db:
            db.execute(
                "UPDATE attempts SET pid = ?, pgid = ?, start_ticks = ?, boot_id = ?"
                " WHERE task_id = ? AND number = ?",
                (process.pid, process.pgid, process.start_ticks, process.boot_id, task_id, attempt),
            )

    def heartbeat(self, node_id: str, *, now: float, lease_seconds: float) -> set[str]:
        with self._tx(durable=False) as db:
            db.execute("UPDATE nodes SET last_seen = ? WHERE id = ?", (now, node_id))
            rows = db.execute(
                "UPDATE tasks SET lease_expires_at = ? WHERE status = 'running' AND owner = ?"
                " RETURNING id, cancel_requested",
                (now + lease_seconds, node_id),
            ).fetchall()
        return {row["id"] for row in rows if row["cancel_requested"]}

    def register_node(
        self, node_id: str, *, host: str, pid: int, max_concurrent: int, now: float
    ) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO nodes (id, host, pid, max_concurrent, started_at, last_seen)"
                " VALUES (?,?,?,?,?,?)",
                (node_id, host, pid, max_concurrent, now, now),
            )

    def deregister_node(self, node_id: str) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM nodes WHERE id = ?", (node_id,))

    def record_progress(
        self, task_id: str, progress: int, message: str | None, *, attempt: int | None = None
    ) -> Task | None:
        with self._tx(durable=False) as db:
            row = db.execute(
                "UPDATE tasks SET progress = ?, progress_message = COALESCE(?, progress_message)"
                " WHERE id = ? AND status = 'running' AND (? IS NULL OR attempt = ?) RETURNING *",
                (progress, message, task_id, attempt, attempt),
            ).fetchone()
        return None if row is None else task_of(row)

    def append_logs(
        self, task_id: str, attempt: int, lines: Sequence[tuple[str, str, float]]
    ) -> None:
        if not lines:
            return
        with self._tx(durable=False) as db:
            db.executemany(
                "INSERT INTO task_logs (task_id, attempt, stream, line, ts) VALUES (?,?,?,?,?)",
                [(task_id, attempt, stream, line, ts) for stream, line, ts in lines],
            )

    def finish(
        self,
        task_id: str,
        attempt: int,
        outcome: Outcome,
        *,
        now: float,
        retry_at: float | None = None,
        counts: bool = True,
    ) -> Task | None:
        result_json = json.dumps(outcome.result) if outcome.has_result else None
        with self._tx() as db:
            fenced = db.execute(
                "UPDATE attempts SET status = ?, finished_at = ?, exit_code = ?, error = ?"
                " WHERE task_id = ? AND number = ? AND status = 'running'"
                " AND EXISTS (SELECT 1 FROM tasks WHERE id = ? AND attempt = ?"
                "   AND status = 'running')",
                (
                    outcome.status.value,
                    now,
                    outcome.exit_code,
                    outcome.error,
                    task_id,
                    attempt,
                    task_id,
                    attempt,
                ),
            ).rowcount
            if not fenced:
                return None
            if retry_at is not None:
                row = db.execute(
                    "UPDATE tasks SET status = 'pending', run_after = ?, owner = NULL,"
                    " lease_expires_at = NULL, error = ?, tries = tries - ?"
                    " WHERE id = ? RETURNING *",
                    (retry_at, outcome.error, 0 if counts else 1, task_id),
                ).fetchone()
            else:
                status = _TERMINAL_FOR[outcome.status]
                row = db.execute(
                    "UPDATE tasks SET status = ?, completed_at = ?, owner = NULL,"
                    " lease_expires_at = NULL, error = ?,"
                    " result = COALESCE(?, result),"
                    " progress = CASE WHEN ? = 'completed' THEN 100 ELSE progress END"
                    " WHERE id = ? RETURNING *",
                    (status.value, now, outcome.error, result_json, status.value, task_id),
                ).fetchone()
                if row["workflow_id"] is not None:
                    moved = self._advance(db, row, now)
                    return replace(task_of(row), workflow_status=moved)
        return task_of(row)

    def request_cancel(self, task_id: str, *, now: float) -> Task | None:
        with self._tx() as db:
            row = db.execute(
                "UPDATE tasks SET status = 'cancelled', completed_at = ?,"
                " error = 'cancelled before it started'"
                " WHERE id = ? AND status IN ('pending', 'blocked') RETURNING *",
                (now, task_id),
            ).fetchone()
            if row is not None and row["workflow_id"] is not None:
                moved = self._advance(db, row, now)
                return replace(task_of(row), workflow_status=moved)
            if row is None:
                row = db.execute(
                    "UPDATE tasks SET cancel_requested = 1 WHERE id = ? AND status = 'running'"
                    " RETURNING *",
                    (task_id,),
                ).fetchone()
            if row is None:
                row = db.execute("SELECT * FROM tasks WHERE id = ?", (task_id,)).fetchone()
        return None if row is None else task_of(row)

    # -- recovery -----------------------------------------------------------------------

    def _running_with_attempts(self, where: str, args: Sequence[Any]) -> list[tuple[Task, Attempt]]:
        rows = self._query(
            "SELECT t.*, a.task_id, a.number, a.node_id, a.status AS a_status,"
            " a.started_at AS a_started_at, a.finished_at, a.exit_code, a.error AS a_error,"
            " a.pid, a.pgid, a.start_ticks, a.boot_id"
            " FROM tasks t JOIN attempts a ON a.task_id = t.id AND a.number = t.attempt"
            f" WHERE t.status = 'running' AND {where} ORDER BY t.seq",
            args,
        )
        pairs = [(task_of(row), attempt_of(row, prefix="a_")) for row in rows]
        return pairs

    def running_attempts(self, owner: str | None = None) -> list[tuple[Task, Attempt]]:
        if owner is None:
            return self._running_with_attempts("1 = 1", ())
        return self._running_with_attempts("t.owner = ?", (owner,))

    def expired_leases(self, *, now: float) -> list[tuple[Task, Attempt]]:
        return self._running_with_attempts("t.lease_expires_at < ?", (now,))
