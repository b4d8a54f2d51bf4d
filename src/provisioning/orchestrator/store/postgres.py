"""PostgreSQL backend: several orchestrator nodes, on several machines, share one queue.

This module and ``sql/postgres.sql`` (its own named queries and overrides) are the only
PostgreSQL-only code; the verbs are :class:`~.sql_store.SqlStore`'s, shared with SQLite,
and the connection plumbing is :mod:`provisioning.drivers.pg`. What sharing adds:

* **One transaction per verb** on one connection (psycopg 3, autocommit off) guarded by
  a lock, so a store may be called from several threads. A broken connection is
  replaced at the next verb.
* **Migrations** run in one transaction under ``pg_advisory_xact_lock``: nodes starting
  at once apply each migration exactly once, the others wait and find it recorded.
* **Claims** pick ready tasks by priority then FIFO with ``FOR UPDATE SKIP LOCKED``, so
  claimers never wait for one another's tasks nor take the same one. A workflow's
  ``parallel_limit`` holds across nodes: its row is locked before its running tasks are
  counted, so two nodes cannot both see the last free slot.
* **Progression** (a finished step releasing its dependents) locks the workflow's row
  first in the finishing transaction, so steps of one workflow finishing on different
  nodes at the same moment are counted one after the other.
* **Fencing**: an attempt changes the task only while it is the task's current running
  attempt (the task's row is locked and checked first); a late answer from a node whose
  lease was taken over changes nothing.
* **LISTEN/NOTIFY**: a transaction that makes tasks claimable sends ``NOTIFY
  provisioning_work`` (delivered at commit); :meth:`PostgresStore.wait_for_work` blocks
  on a dedicated listening connection until such a notification or a timeout.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import psycopg
import psycopg.errors
from psycopg.rows import dict_row

from ...drivers.pg import Listener, lost, mask_dsn, session_guards, with_defaults
from .base import StoreError
from .faults import StoreUnavailable
from .sql_dialect import one
from .sql_queries import DATA_TABLES
from .sql_store import SqlStore

__all__ = ["WORK_CHANNEL", "PostgresStore"]

Row = dict[str, Any]
Conn = psycopg.Connection[Row]

# The channel a transaction that makes tasks claimable notifies (delivered at commit).
WORK_CHANNEL = "provisioning_work"
# A verb that lost a deadlock (PostgreSQL aborts one of the transactions) runs again.
DEADLOCK_RETRIES = 3

R = TypeVar("R")


def notify_work(db: Conn) -> None:
    """Tell idle nodes that tasks became claimable (sent when the transaction commits;
    several in one transaction are folded into one)."""
    db.execute(f"NOTIFY {WORK_CHANNEL}")


log = logging.getLogger("provisioning.orchestrator.store.postgres")

# pg_advisory_xact_lock key of the migration transaction ('prov' 'migr' in ASCII).
MIGRATION_LOCK_KEY = 0x70726F766D696772
# Inside run_batch, a verb waits at most this long for a row lock; one that would wait
# longer is rolled back to its savepoint and run on its own after the batch commits
# (the locks taken by the batch's earlier verbs could otherwise deadlock with another
# node's batch).
BATCH_LOCK_TIMEOUT_MS = 100


# load(): parents before children (foreign keys); the columns SQLite keeps as 0/1.
_LOAD_ORDER = DATA_TABLES
_BOOLEAN_COLUMNS = {"tasks": ("cancel_requested",), "workflows": ("rollback_enabled",)}

# Lock conflicts worth running the verb again (on its own) rather than failing it.
_CONTENDED = (psycopg.errors.LockNotAvailable, psycopg.errors.DeadlockDetected)


def _clean(text: str | None) -> str | None:
    """PostgreSQL text cannot hold NUL characters (SQLite's can): they become U+FFFD."""
    if text is None or "\x00" not in text:
        return text
    return text.replace("\x00", "\ufffd")


def _loaded(value: Any, flag: bool) -> Any:
    """A value of SQLite's dump as PostgreSQL keeps it (a 0/1 ``flag`` as a boolean)."""
    if flag:
        return bool(value)
    return _clean(value) if isinstance(value, str) else value


class PostgresStore(SqlStore):
    """The :class:`~.base.Store` on a PostgreSQL database shared by several nodes."""

    backend = "postgres"
    dialect = "postgres"
    marker = "%s"
    shared = True
    row_locks = True

    def __init__(self, dsn: str, lease_seconds: float = 30.0) -> None:
        self.dsn = dsn
        self._lease_seconds = lease_seconds
        self._guards = session_guards(lease_seconds)
        self._lock = threading.RLock()
        self._batch_thread = None
        self._version = 0
        self._closed = False
        self._db: Conn = self._connect()
        # The LISTEN connection of wait_for_work, opened on first use.
        self._listener = Listener(self._named("provisioning-orchestrator-listen"), WORK_CHANNEL)

    # -- connection and transactions ------------------------------------------------------

    def _run_verb(self, name: str, call: Callable[[], R]) -> R:
        """Run a verb again when PostgreSQL aborted its transaction to break a deadlock
        (nothing of it was kept). Inside run_batch the error goes up instead: the batch
        rolls the verb back to its savepoint and runs it on its own after the commit."""
        for _ in range(DEADLOCK_RETRIES):
            try:
                return call()
            except psycopg.errors.DeadlockDetected:
                if self._batch_thread == threading.get_ident():
                    raise
                log.warning("%s lost a deadlock; running it again", name)
        return call()

    def sibling(self) -> PostgresStore:
        """The same database on a connection of its own (for the heartbeat)."""
        return PostgresStore(self.dsn, lease_seconds=self._lease_seconds)

    def _work_released(self, db: Conn) -> None:
        notify_work(db)

    def _slot_freed(self, db: object, workflow_id: str) -> None:
        assert isinstance(db, psycopg.Connection)
        if one(self._q(db, "workflow_has_pending", workflow_id).fetchone())["waiting"]:
            notify_work(db)

    def _text(self, value: str | None) -> str | None:
        return _clean(value)

    def _named(self, name: str) -> str:
        """The DSN with an ``application_name`` (seen in pg_stat_activity) and the
        session guards, each unless the DSN sets it already."""
        return with_defaults(self.dsn, application_name=name, **self._guards)

    def _connect(self) -> Conn:
        try:
            return psycopg.connect(
                self._named("provisioning-orchestrator"), autocommit=False, row_factory=dict_row
            )
        except psycopg.Error as exc:
            raise StoreUnavailable(
                f"cannot connect to PostgreSQL {mask_dsn(self.dsn)}: {exc}"
            ) from None

    def _refuse_if_closed(self) -> None:
        if self._closed:
            raise StoreError("the PostgreSQL store is closed")

    def _connection(self) -> Conn:
        self._refuse_if_closed()
        if lost(self._db):
            log.warning("PostgreSQL connection lost; reconnecting")
            self._db = self._connect()
        return self._db

    def _begin(self, db: Conn, durable: bool) -> None:
        """``durable=False`` does not wait for the commit to reach the WAL on disk: only
        for changes whose loss in a server crash is harmless (progress and log lines)."""
        if not durable:
            db.execute("SET LOCAL synchronous_commit = off")

    def _commit(self, db: Conn) -> None:
        db.commit()

    def _rollback(self, db: Conn) -> None:
        try:
            db.rollback()
        except psycopg.Error:
            log.debug("rollback failed", exc_info=True)

    def _failed(self, exc: BaseException) -> BaseException | None:
        if isinstance(exc, psycopg.OperationalError) and not self._contended(exc):
            return StoreUnavailable(f"PostgreSQL: {exc}")
        return None

    def _contended(self, exc: BaseException) -> bool:
        """Inside run_batch, a verb waits at most ``BATCH_LOCK_TIMEOUT_MS`` for a row
        lock (the locks taken by the batch's earlier verbs could otherwise deadlock with
        another node's batch); one that would wait longer runs on its own afterwards."""
        return isinstance(exc, _CONTENDED)

    def _begin_batch(self) -> Conn:
        try:
            db = self._connection()
            db.execute(f"SET LOCAL lock_timeout = '{BATCH_LOCK_TIMEOUT_MS}ms'")
        except psycopg.Error as exc:
            self._rollback(self._db)
            raise StoreUnavailable(f"PostgreSQL: {exc}") from None
        return db

    def _query(self, sql: str, args: Sequence[Any] = ()) -> list[Row]:
        with self._tx() as db:
            rows: list[Row] = db.execute(sql, args).fetchall()
            return rows

    # -- schema -------------------------------------------------------------------------

    def _lock_migrations(self, db: Conn) -> None:
        """Nodes starting at once wait for the first, then find its migrations recorded."""
        db.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK_KEY,))

    def load(self, rows: dict[str, list[dict[str, Any]]]) -> dict[str, int]:
        """Copy the rows of another store (:meth:`SQLiteStore.dump`: table -> rows with
        the SQLite column names) into this one, which must hold no task and no workflow.
        One transaction; each table's count is checked before it commits. Returns the
        number of rows per table."""
        counts: dict[str, int] = {}
        with self._tx() as db:
            self._lock_migrations(db)
            present = one(self._q(db, "count_work").fetchone())["n"]
            if present:
                raise StoreError(
                    f"the PostgreSQL store {mask_dsn(self.dsn)} is not empty "
                    f"({present} task(s) and workflow(s)); migrate into an empty database"
                )
            for table in _LOAD_ORDER:
                table_rows = rows.get(table, [])
                described = self._q(db, "table_columns", table).fetchall()
                columns = [row["column_name"] for row in described]
                if table_rows:
                    unknown = set(table_rows[0]) - set(columns)
                    if unknown:
                        raise StoreError(f"{table}: unknown column(s) {sorted(unknown)}")
                    names = [c for c in columns if c in table_rows[0]]
                    flags = _BOOLEAN_COLUMNS.get(table, ())
                    values = [
                        tuple(_loaded(row[c], c in flags) for c in names) for row in table_rows
                    ]
                    with db.cursor() as cur:
                        cur.executemany(
                            f"INSERT INTO {table} ({', '.join(names)})"
                            f" VALUES ({', '.join(['%s'] * len(names))})",
                            values,
                        )
                if "seq" in columns:
                    db.execute(
                        f"SELECT setval(pg_get_serial_sequence('{table}', 'seq'),"
                        f" COALESCE((SELECT MAX(seq) FROM {table}), 0) + 1, false)"
                    )
                stored = one(db.execute(f"SELECT COUNT(*) AS n FROM {table}").fetchone())["n"]
                if stored != len(table_rows):
                    raise StoreError(f"{table}: {stored} row(s) stored of {len(table_rows)}")
                counts[table] = stored
        return counts

    def close(self) -> None:
        """Close both connections; a thread in :meth:`wait_for_work` returns first."""
        self._closed = True
        self._listener.close()
        with self._lock:
            self._db.close()

    def meta(self) -> dict[str, Any]:
        with self._lock:
            server = None if self._db.closed else self._db.info.parameter_status("server_version")
        return {
            "backend": self.backend,
            "server_version": server,
            "schema_version": self._version,
            "dsn": mask_dsn(self.dsn),
        }

    # -- LISTEN/NOTIFY ------------------------------------------------------------------

    def listen(self) -> None:
        """Start listening for work notifications now (idempotent). Call it before the
        first claim so that no notification sent in between is missed; otherwise the
        first :meth:`wait_for_work` starts listening itself."""
        self._refuse_if_closed()
        try:
            self._listener.start()
        except psycopg.Error as exc:
            raise StoreError(f"cannot LISTEN on PostgreSQL {mask_dsn(self.dsn)}: {exc}") from None

    def wait_for_work(self, timeout: float) -> bool:
        """Block until another transaction made tasks claimable (``NOTIFY
        provisioning_work``: an enqueue, a workflow created or released, a retry
        scheduled, a workflow task ended) or until ``timeout`` seconds passed; ``True``
        means "claim now" (see :meth:`Listener.wait`). Raises :class:`StoreError` once
        the store is closed."""
        self._refuse_if_closed()
        return self._listener.wait(timeout)

    # -- queue --------------------------------------------------------------------------

    def _array(self, values: Sequence[Any]) -> Any:
        return list(values)

    def _room(self, db: Conn) -> dict[str, int]:
        """Nothing yet: a workflow's running tasks are counted once its row is locked."""
        return {}

    def _free_slots(self, db: Conn, ids: list[str], *, wait: bool) -> dict[str, int | None]:
        """Lock these workflows' rows (in id order) and count their free slots. The first
        round of a claim waits for them; later rounds leave out (``None``) those another
        transaction holds, so a claim never waits while holding a workflow lock. A task
        naming a workflow that does not exist has no limit (left out of the answer)."""
        rows = self._q(db, "lock_workflows" if wait else "lock_free_workflows", ids).fetchall()
        limits = {row["id"]: row["parallel_limit"] for row in rows}
        rows = self._q(db, "running_in_workflows", list(limits)).fetchall()
        running = {row["workflow_id"]: row["n"] for row in rows}
        free: dict[str, int | None] = {w: n - running.get(w, 0) for w, n in limits.items()}
        missing = [workflow_id for workflow_id in ids if workflow_id not in limits]
        if missing and not wait:
            rows = self._q(db, "workflows_exist", missing).fetchall()
            free.update({row["id"]: None for row in rows})
        return free

    def _lock_ready(self, db: Conn, now: float) -> Callable[[list[int]], set[int]]:
        """Chosen tasks are locked ``FOR UPDATE SKIP LOCKED``: one another claimer just
        took is dropped (and its slot given back)."""

        def lock(seqs: list[int]) -> set[int]:
            return {row["seq"] for row in self._q(db, "lock_ready", seqs, now).fetchall()}

        return lock
