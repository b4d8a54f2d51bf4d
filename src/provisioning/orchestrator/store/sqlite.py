"""SQLite backend (the default; the seed's ``filesystem``): one WAL file in ``data_dir``.

This module is the only SQLite-only code: the verbs, the named queries and the
migrations (``sql/migrations``) are shared with PostgreSQL.
One connection serves every verb under a lock; each write is one
``BEGIN IMMEDIATE`` transaction committed with ``synchronous=FULL``, so a verb
that returned is on disk.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from .base import StoreError
from .faults import StoreUnusable, classify
from .sql_queries import DATA_TABLES, sql_migrations
from .sql_store import SqlStore


def open_sqlite(path: Path) -> SQLiteStore:
    """Open, check and migrate the database; a file that is not one, a damaged one or
    one that cannot be written is a :class:`StoreError` saying which and what to do."""
    try:
        store = SQLiteStore(path)
        problems = [row[0] for row in store._query("PRAGMA quick_check")]
        if problems != ["ok"]:
            store.close()
            raise StoreUnusable(
                f"{path} is damaged ({'; '.join(problems[:3])}): restore it from a backup, "
                "or move it (and its -wal file) aside to start with an empty queue"
            )
        store.migrate()
    except sqlite3.DatabaseError as exc:
        text = str(exc)
        if "readonly" in text or "unable to open" in text or "read-only" in text:
            raise StoreUnusable(
                f"{path}: cannot write it ({text}): the data dir must be writable by the "
                "orchestrator (check its permissions and that its filesystem is not read-only)"
            ) from None
        raise StoreUnusable(
            f"{path} is not a usable orchestrator database ({text}): restore it from a "
            "backup, or move it (and its -wal file) aside to start with an empty queue"
        ) from None
    return store


class SQLiteStore(SqlStore):
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

    def sibling(self) -> None:
        """Not shared: the heartbeat renews nothing another node could take."""
        return None

    def wait_for_work(self, timeout: float) -> bool:
        """One node at a time uses this file: no other node queues work to wait for."""
        time.sleep(timeout)
        return False

    def _query(self, sql: str, args: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    def _each(self, name: str, *args: Any) -> Iterator[sqlite3.Row]:
        with self._lock:
            yield from self._db.execute(self._queries[name], args)

    # -- schema -------------------------------------------------------------------------

    def migrate(self) -> int:
        with self._tx() as db:
            db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = db.execute("SELECT MAX(version) AS v FROM schema_version").fetchone()
            current = row["v"] or 0
            for version, script in sql_migrations("sqlite"):
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
        tables = DATA_TABLES
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
