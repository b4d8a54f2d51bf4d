"""How the SQL backends (SQLite, PostgreSQL) write a new task: the shared fields of
:func:`..models.records.new_task_fields` in column order. Reading a row back is
:mod:`..models.records`, shared with SurrealDB."""

from __future__ import annotations

from typing import Any, Unpack

from ...tasks import NewTask
from ..models.records import NEW_TASK_FIELDS, new_task_fields
from .base import NewTaskRow

NEW_TASK_COLUMNS = ", ".join(NEW_TASK_FIELDS)


def new_task_values(task: NewTask, **new: Unpack[NewTaskRow]) -> tuple[Any, ...]:
    fields = new_task_fields(task, **new)
    return tuple(fields[name] for name in NEW_TASK_FIELDS)


def markers(marker: str, count: int = len(NEW_TASK_FIELDS)) -> str:
    return ",".join([marker] * count)
