"""The writes of one SurrealDB verb, sent as one SurrealQL transaction; its named
queries; and its records read as the SQL stores' rows (one reader per domain record,
in :mod:`.rows`)."""

from __future__ import annotations

import functools
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from surrealdb import RecordID

from ..models import Task, Workflow
from ..models import records as rows
from .sql_queries import parse_queries, read_sql

T = TypeVar("T")

CONFLICT = "provisioning: the store changed during the transaction"
_PARAM = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")
_FIELD = re.compile(r"^[a-z_][a-z0-9_]*$")


@functools.cache
def queries() -> dict[str, str]:
    """The named SurrealQL of ``sql/surreal.surql``: the reads and the verbs' writes."""
    return parse_queries(read_sql("surreal.surql"), {})


class Tx:
    """The writes of one verb, sent as one transaction by :meth:`SurrealStore._transact`.

    Each statement names its bound variables freely (``$id``, ``$now``); they are
    renamed per statement so that statements never share one by accident.
    """

    def __init__(self, state: Mapping[str, int]) -> None:
        self.state = dict(state)
        self._statements: list[str] = []
        self._params: dict[str, Any] = {}

    @property
    def empty(self) -> bool:
        return not self._statements

    def next_seq(self, counter: str) -> int:
        """The next value of a sequence (``task_seq``, ``workflow_seq``, ``log_seq``)."""
        self.state[counter] += 1
        return self.state[counter]

    def add(self, sql: str, **params: Any) -> None:
        prefix = f"s{len(self._statements)}_"

        def rename(match: re.Match[str]) -> str:
            name = match.group(1)
            return f"${prefix}{name}" if name in params else match.group(0)

        self._statements.append(_PARAM.sub(rename, sql))
        self._params.update({prefix + name: value for name, value in params.items()})

    def run(self, name: str, **params: Any) -> None:
        """Queue the named query ``name`` of :func:`queries`."""
        self.add(queries()[name], **params)

    def set(self, record: RecordID | list[RecordID], changes: Mapping[str, Any]) -> None:
        """Set fields of one record or several (``None`` removes a field); nothing of
        one that is gone."""
        if not changes:
            return
        for name in changes:
            if name == "id" or not _FIELD.fullmatch(name):
                raise ValueError(f"not a settable field name: {name!r}")
        assignments = ", ".join(f"{name} = $f_{name}" for name in changes)
        self.add(
            f"UPDATE $id SET {assignments} RETURN NONE",
            id=record,
            **{f"f_{name}": value for name, value in changes.items()},
        )

    def script(self) -> tuple[str, dict[str, Any]]:
        """The transaction: check the revision the verb read under, bump it with the
        counters, then every write."""
        rev = self.state["rev"]
        self.state["rev"] = rev + 1
        body = "".join(f"{statement};\n" for statement in self._statements)
        sql = (
            "BEGIN TRANSACTION;\n"
            f"IF meta:state.rev != $tx_rev {{ THROW '{CONFLICT}' }};\n"
            "UPDATE meta:state MERGE $tx_state RETURN NONE;\n"
            f"{body}COMMIT TRANSACTION;"
        )
        return sql, {**self._params, "tx_rev": rev, "tx_state": self.state}


class SurrealVerbs(ABC):
    """What the verbs of :class:`~.surreal.SurrealStore`'s mixins run on."""

    @abstractmethod
    def _transact(self, build: Callable[[Tx], T]) -> T:
        """Run one verb: ``build`` reads and queues its writes on a :class:`Tx`."""

    @abstractmethod
    def _named(self, name: str, **params: Any) -> list[Any]:
        """Run the named reads ``name``; each one's result."""

    @abstractmethod
    def _select(self, name: str, **params: Any) -> list[dict[str, Any]]:
        """The rows of the last SELECT of the named query ``name``."""


def rid(table: str, key: Any) -> RecordID:
    """The record id ``table:key`` (a bound value, never SurrealQL text)."""
    return RecordID(table, key)


def key_of(record: Mapping[str, Any]) -> Any:
    """The key part of a record's id (``task:⟨uuid⟩`` -> ``"uuid"``)."""
    value: RecordID = record["id"]
    return value.id


class AsRow:
    """A record as :mod:`.rows` reads a row: an absent field is NULL, the id is its key."""

    def __init__(self, record: Mapping[str, Any], **extra: Any) -> None:
        self._record = {**record, **extra}

    def __getitem__(self, key: str) -> Any:
        value = self._record.get(key)
        return str(value.id) if key == "id" and isinstance(value, RecordID) else value


def new_task_row(tx: Tx, fields: Mapping[str, Any]) -> dict[str, Any]:
    """A new task record of :func:`~..models.records.new_task_fields` (its id included);
    ``None`` fields are simply absent."""
    row = {name: value for name, value in fields.items() if value is not None}
    row.update(id=rid("task", fields["id"]), seq=tx.next_seq("task_seq"), progress=0)
    row.update(attempt=0, tries=0, cancel_requested=False)
    return row


def task_of(record: Mapping[str, Any]) -> Task:
    return rows.task_of(AsRow(record))


def workflow_of(record: Mapping[str, Any]) -> Workflow:
    return rows.workflow_of(AsRow(record))
