"""The named queries of the SQL stores and the plumbing both dialects share.

Queries live in ``sql/*.sql`` under ``-- name: <name>`` headers (after procrastinate's
``queries.sql``): ``queue.sql``, ``workflow.sql`` and ``reads.sql`` hold one set for
SQLite and PostgreSQL; ``<dialect>.sql`` overrides a query by giving its name again.
"""

from __future__ import annotations

import functools
import itertools
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from importlib import resources
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

from .base import StoreError
from .rows import NEW_TASK_COLUMNS, Row, markers

# Every column of a workflow (its spec, which can be large and is read only to plan a
# rollback, lives apart in workflow_specs).
WF = (
    "id, seq, name, version, status, phase, failure, error, priority, parallel_limit,"
    " rollback_enabled, tasks_total, tasks_open, tasks_completed, tasks_failed,"
    " steps_completed, checkpoint_at, created_at, started_at, completed_at"
)
# The tables that hold work, in an order that loads them (``migrate-store``).
DATA_TABLES = (
    "workflows",
    "workflow_specs",
    "workflow_steps",
    "workflow_edges",
    "tasks",
    "attempts",
    "task_logs",
)
SHARED = ("queue.sql", "workflow.sql", "reads.sql", "retention.sql")

P = ParamSpec("P")
R = TypeVar("R")
S = TypeVar("S", bound="SqlDialect")

_NAME = re.compile(r"^-- name: (\w+)\s*$", re.MULTILINE)


class Cursor(Protocol):
    """What both drivers' cursors offer."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


def parse_queries(text: str, fields: dict[str, str]) -> dict[str, str]:
    """The ``-- name:`` queries of one file, each on one line, ``{field}``s filled in.
    A name starting with ``_`` is a fragment: later queries take it as ``{_name}``."""
    queries: dict[str, str] = {}
    parts = _NAME.split(text)
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        lines = [line for line in body.splitlines() if not line.startswith("--")]
        query = " ".join(" ".join(lines).split()).rstrip(";")
        for field, value in fields.items():
            query = query.replace("{" + field + "}", value)
        if name.startswith("_"):
            fields = {**fields, name: query}
        else:
            queries[name] = query
    return queries


def read_sql(name: str) -> str:
    entry = resources.files("provisioning.orchestrator.store") / "sql" / name
    return entry.read_text(encoding="utf-8") if entry.is_file() else ""


def load_queries(dialect: str, marker: str) -> dict[str, str]:
    """Every named query, with ``dialect``'s overrides applied and ``?`` turned into the
    driver's ``marker``."""
    fields = {"wf": WF, "new_task_columns": NEW_TASK_COLUMNS, "new_task_markers": markers("?")}
    queries: dict[str, str] = {}
    for name in (*SHARED, f"{dialect}.sql"):
        queries.update(parse_queries(read_sql(name), fields))
    return {name: query.replace("?", marker) for name, query in queries.items()}


def migrations(dialect: str, suffix: str = ".sql") -> list[tuple[int, str]]:
    """``dialect``'s schema migrations, ``(version, script)`` in the order they apply."""
    folder = resources.files("provisioning.orchestrator.store") / "sql" / dialect
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(suffix):
            found.append((int(entry.name.split("_", 1)[0]), entry.read_text(encoding="utf-8")))
    return sorted(found)


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
    """A SQL connection's dialect: its named queries and the hooks a store may change."""

    dialect = "sqlite"
    marker = "?"

    @functools.cached_property
    def _queries(self) -> dict[str, str]:
        return load_queries(self.dialect, self.marker)

    @abstractmethod
    def _tx(self, durable: bool = True) -> AbstractContextManager[Any]: ...

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
