"""What a backend's failure means to the callers: the store is full (no space left
for a write), or it is unavailable; either way a typed, one-line error instead of
a driver's exception, so the API answers 507/503 JSON and nothing else dies."""

from __future__ import annotations

import errno
import sqlite3

from .base import StoreError

_SQLITE_FULL = 13
_PG_DISK_FULL = "53100"
_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


class StoreFull(StoreError):
    """A write failed for lack of space; it changed nothing and may be retried."""


class StoreUnusable(StoreError):
    """At start: the store's file is not a database, is damaged or cannot be written."""


class StoreUnavailable(StoreError):
    """The backend failed for another reason (I/O error, connection lost)."""


def classify(exc: BaseException) -> BaseException:
    """``exc`` as a :class:`StoreError` when it is the backend's failure; others as is."""
    if isinstance(exc, StoreError):
        return exc
    if _is_full(exc):
        return StoreFull(f"store full: {exc}")
    module = type(exc).__module__.split(".", 1)[0]
    if module in ("sqlite3", "psycopg", "surrealdb") or isinstance(exc, OSError):
        return StoreUnavailable(f"store unavailable: {exc}")
    return exc


def _is_full(exc: BaseException) -> bool:
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        return (code is not None and code & 0xFF == _SQLITE_FULL) or "is full" in str(exc)
    if isinstance(exc, OSError):
        return exc.errno in _NO_SPACE
    return getattr(exc, "sqlstate", None) == _PG_DISK_FULL
