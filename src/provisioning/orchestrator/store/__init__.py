"""Storage backends behind one :class:`Store` protocol."""

from __future__ import annotations

from pathlib import Path

from ...config import Settings, StorageBackend
from .base import Store, StoreError
from .sqlite import SQLiteStore, open_sqlite

__all__ = ["SQLiteStore", "Store", "StoreError", "open_store"]


def open_store(settings: Settings) -> Store:
    """Open (and migrate) the backend the configuration names."""
    backend = settings.storage.backend
    if backend is not StorageBackend.SURREALDB and settings.storage.surrealdb_url:
        raise StoreError(
            f"storage.surrealdb_url (--surrealdb-url) is for --storage-type surrealdb-server, "
            f"not {backend.value}"
        )
    if backend is StorageBackend.SQLITE:
        data_dir: Path = settings.data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
        return open_sqlite(data_dir / "orchestrator.db")
    if backend is StorageBackend.POSTGRES:
        if not settings.storage.dsn:
            raise StoreError(
                "storage.backend = postgres needs storage.dsn (or PROVISIONING_STORAGE_DSN), "
                "e.g. postgresql://user@host:5432/provisioning"
            )
        from .postgres import PostgresStore

        pg = PostgresStore(settings.storage.dsn, settings.executor.lease_seconds)
        pg.migrate()
        return pg
    if backend is StorageBackend.SURREALDB:
        from .surreal import open_surreal

        return open_surreal(settings)
    raise StoreError(f"unknown storage backend {backend.value!r}")
