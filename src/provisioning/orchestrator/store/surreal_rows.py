"""SurrealDB records read as the SQL stores' rows (one reader per domain record, in
:mod:`.rows`), and the new task record."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from surrealdb import RecordID

from ..models import Task, Workflow
from ..models import records as rows
from .surreal_tx import Tx


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
