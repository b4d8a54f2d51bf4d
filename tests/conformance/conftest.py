"""Conformance fixtures: every Store backend behind one parametrised ``store`` fixture
(ids ``sqlite``, ``postgres``, ``surreal``; and ``sqlite-memory``, the in-memory file).

To run the suite against another backend, add one entry to :data:`BACKENDS` that knows
how to open a fresh, empty database and another handle on it; nothing in the tests
names a backend. PostgreSQL runs on the session's throwaway server (pg_server.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from provisioning.orchestrator.store import SQLiteStore, Store
from tests.integration.pg_server import (  # noqa: F401  (fixtures)
    _recycle_postgres_databases,
    _stop_postgres_at_the_end,
    pg_dsn,
    pg_server,
    running_server,
)


@dataclass
class Backend:
    """One storage backend under test, opened on a database of its own."""

    name: str
    connect: Callable[[], Store]
    # A second handle sees what the first wrote (a file, a server): reopening and
    # several orchestrators sharing the queue can be tested.
    shared: bool
    handles: list[Store] = field(default_factory=list)

    def open(self) -> Store:
        """A new, migrated handle on this backend's database (closed at teardown)."""
        handle = self.connect()
        self.handles.append(handle)
        handle.migrate()
        return handle

    def close(self, handle: Store) -> None:
        """Close one handle now (as a stopping orchestrator would)."""
        handle.close()
        self.handles.remove(handle)

    def close_all(self) -> None:
        for handle in self.handles:
            handle.close()
        self.handles.clear()


def _sqlite_file(tmp_path: Path) -> Backend:
    path = tmp_path / "db.sqlite"
    return Backend("sqlite", lambda: SQLiteStore(path), shared=True)


def _sqlite_memory(tmp_path: Path) -> Backend:
    return Backend("sqlite-memory", lambda: SQLiteStore(":memory:"), shared=False)


def _postgres(tmp_path: Path) -> Backend:
    # A database of its own on the session's throwaway server (skipped without one).
    dsn = running_server().new_database()

    def connect() -> Store:
        from provisioning.orchestrator.store.postgres import PostgresStore

        return PostgresStore(dsn)

    return Backend("postgres", connect, shared=True)


def _surrealdb(tmp_path: Path) -> Backend:
    # The embedded engine on a surrealkv folder; handles of one process share it.
    from provisioning.orchestrator.store.surreal import SurrealStore

    folder = tmp_path / "surreal"
    return Backend("surreal", lambda: SurrealStore(folder), shared=True)


BACKENDS: dict[str, Callable[[Path], Backend]] = {
    "sqlite": _sqlite_file,
    "sqlite-memory": _sqlite_memory,
    "postgres": _postgres,
    "surreal": _surrealdb,
}


@pytest.fixture(params=list(BACKENDS))
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    chosen = BACKENDS[request.param](tmp_path)
    yield chosen
    chosen.close_all()


@pytest.fixture
def store(backend: Backend) -> Store:
    """A migrated, empty store of the backend under test."""
    return backend.open()
