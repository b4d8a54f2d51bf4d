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
from collections.abc import Iterator, Sequence
from contextlib import suppress
from pathlib import Path
from typing import Any

from .base import OneNode, StoreError
from .faults import StoreUnusable
from .sql_queries import DATA_TABLES
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


class SQLiteStore(OneNode, SqlStore):
    """The :class:`~.base.Store` on one SQLite file (or ``:memory:``)."""

    backend = "sqlite"

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
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.execute("PRAGMA busy_timeout=10000")
        self._version = 0

    def _connection(self) -> sqlite3.Connection:
        return self._db

    def _begin(self, db: sqlite3.Connection, durable: bool) -> None:
        """``durable=False`` skips the fsync at commit: only for changes whose loss in an
        OS crash is harmless (claims, progress, logs: after a reboot no process of ours
        is alive, so the task simply runs again)."""
        if durable != self._durable:
            db.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
            self._durable = durable
        db.execute("BEGIN IMMEDIATE")

    def _commit(self, db: sqlite3.Connection) -> None:
        db.execute("COMMIT")

    def _rollback(self, db: sqlite3.Connection) -> None:
        # SQLite may have rolled back already (a full disk does): then there is
        # nothing to undo, and ROLLBACK itself would fail.
        if db.in_transaction:
            with suppress(sqlite3.Error):
                db.execute("ROLLBACK")

    def _in_transaction(self, db: sqlite3.Connection) -> bool:
        return db.in_transaction

    def _query(self, sql: str, args: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    def _each(self, name: str, *args: Any) -> Iterator[sqlite3.Row]:
        with self._lock:
            yield from self._db.execute(self._queries[name], args)

    # -- schema -------------------------------------------------------------------------

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
