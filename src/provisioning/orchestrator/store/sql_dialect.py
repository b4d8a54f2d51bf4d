"""The plumbing both SQL dialects share: a verb's transaction (a savepoint inside a
batch), group commit, migrations, and running the named queries of
:mod:`.sql_queries`; a dialect gives the hooks (how it begins, commits, rolls back,
and which driver failures mean what)."""

from __future__ import annotations

import functools
import itertools
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

from ..models.records import Row
from .base import StoreError
from .faults import classify
from .sql_queries import load_queries, sql_migrations

P = ParamSpec("P")
R = TypeVar("R")
S = TypeVar("S", bound="SqlDialect")


class Cursor(Protocol):
    """What both drivers' cursors offer."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


def verb(method: Callable[Concatenate[S, P], R]) -> Callable[Concatenate[S, P], R]:
    """A store verb, run through the dialect's ``_run_verb``."""

    @functools.wraps(method)
    def wrapper(self: S, /, *args: P.args, **kwargs: P.kwargs) -> R:
        return self._run_verb(method.__name__, functools.partial(method, self, *args, **kwargs))

    return wrapper


def one(row: Row | None) -> Row:
    """The row a statement must have returned."""
    if row is None:
        raise StoreError("the database returned no row where one was expected")
    return row


class SqlDialect(ABC):
    """A SQL connection's dialect: its named queries, its transactions (one per verb;
    several verbs in one under :meth:`run_batch`) and the hooks a store may change."""

    dialect = "sqlite"
    marker = "?"
    _lock: threading.RLock
    # The thread running run_batch, while it does.
    _batch_thread: int | None = None

    @functools.cached_property
    def _queries(self) -> dict[str, str]:
        return load_queries(self.dialect, self.marker)

    @abstractmethod
    def _connection(self) -> Any:
        """The connection, opened again if it was lost."""

    @abstractmethod
    def _begin(self, db: Any, durable: bool) -> None:
        """Start a transaction (``durable=False``: its commit need not wait for the disk)."""

    @abstractmethod
    def _commit(self, db: Any) -> None: ...

    @abstractmethod
    def _rollback(self, db: Any) -> None:
        """Roll back, quietly: the transaction may be gone already."""

    def _in_transaction(self, db: Any) -> bool:
        """Whether the transaction still stands after a failure."""
        return True

    def _failed(self, exc: BaseException) -> BaseException | None:
        """The store's error for a driver's failure (``None``: it goes up as it is)."""
        return None

    def _contended(self, exc: BaseException) -> bool:
        """Whether a verb failed only waiting for a lock (run it again on its own)."""
        return False

    def _begin_batch(self) -> Any:
        db = self._connection()
        self._begin(db, True)
        return db

    @contextmanager
    def _tx(self, durable: bool = True) -> Iterator[Any]:
        """One transaction; inside :meth:`run_batch`, a savepoint, so a failing verb
        undoes only itself."""
        with self._lock:
            db = self._connection()
            if self._batch_thread is not None:
                db.execute("SAVEPOINT verb")
                try:
                    yield db
                except BaseException:
                    if self._in_transaction(db):
                        db.execute("ROLLBACK TO SAVEPOINT verb")
                        db.execute("RELEASE SAVEPOINT verb")
                    raise
                db.execute("RELEASE SAVEPOINT verb")
                return
            try:
                self._begin(db, durable)
                yield db
                self._commit(db)
            except BaseException as exc:
                self._rollback(db)
                failure = self._failed(exc)
                if failure is None:
                    raise
                raise failure from exc

    def run_batch(self, calls: Sequence[Callable[[], Any]]) -> list[tuple[bool, Any]]:
        """Run several verbs in one durable transaction (group commit); each result is
        ``(True, value)`` or ``(False, exception)``. Nothing is reported before the
        commit: if it fails, every verb fails. A verb that failed only waiting for a lock
        (:meth:`_contended`) is rolled back to its savepoint and run on its own, in its
        own transaction, after the commit."""
        outcomes: list[tuple[bool, Any]] = []
        deferred: list[int] = []
        with self._lock:
            try:
                db = self._begin_batch()
            except StoreError as exc:
                return [(False, exc) for _ in calls]
            self._batch_thread = threading.get_ident()
            try:
                for index, call in enumerate(calls):
                    try:
                        outcomes.append((True, call()))
                    except Exception as exc:
                        if self._contended(exc):
                            outcomes.append((False, None))
                            deferred.append(index)
                        elif not self._in_transaction(db):
                            # The driver rolled the whole batch back (disk full, I/O
                            # error): nothing of it stands, so every verb fails.
                            return [(False, classify(exc))] * len(calls)
                        else:
                            outcomes.append((False, self._failed(exc) or exc))
            finally:
                self._batch_thread = None
            try:
                self._commit(db)
            except Exception as exc:
                self._rollback(db)
                error = classify(exc)
                if not isinstance(error, StoreError):
                    error = StoreError(f"commit failed: {exc}")
                return [(False, error) for _ in calls]
            for index in deferred:
                try:
                    outcomes[index] = (True, calls[index]())
                except Exception as exc:
                    outcomes[index] = (False, exc)
        return outcomes

    def migrate(self) -> int:
        """Apply pending schema migrations in one transaction; the schema version."""
        with self._tx() as db:
            self._lock_migrations(db)
            db.execute(self._queries["schema_version_table"])
            current = one(db.execute("SELECT MAX(version) AS v FROM schema_version").fetchone())
            version: int = current["v"] or 0
            for number, script in sql_migrations(self.dialect):
                if number > version:
                    for statement in script.split(";\n"):
                        if statement.strip():
                            db.execute(statement)
                    self._q(db, "record_version", number)
                    version = number
        self._version = version
        return version

    def _lock_migrations(self, db: Any) -> None:  # noqa: B027  (a hook: nothing to do here)
        """Nodes starting at once apply each migration once (one node at a time here)."""

    def _run_verb(self, name: str, call: Callable[[], R]) -> R:
        return call()

    def _work_released(self, db: Any) -> None:  # noqa: B027  (a hook: nothing to do here)
        """Tasks became claimable in this transaction."""

    def _q(self, db: Any, name: str, *args: Any) -> Cursor:
        cursor: Cursor = db.execute(self._queries[name], args)
        return cursor

    def _many(self, db: Any, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        rows = iter(rows)
        first = next(rows, None)
        if first is not None:
            cursor = db.cursor()
            cursor.executemany(sql, itertools.chain((first,), rows))
            cursor.close()

    @abstractmethod
    def _query(self, sql: str, args: Sequence[Any] = ()) -> list[Any]:
        """Rows of one read (in a transaction of its own where the driver needs one)."""

    def _read(self, name: str, *args: Any) -> list[Row]:
        rows: list[Row] = self._query(self._queries[name], args)
        return rows
