"""How the SQL backends (SQLite, PostgreSQL) write a new task; reading a row back is
:mod:`..models.records`, shared with SurrealDB."""

from __future__ import annotations

import json
import uuid
from typing import Any, Unpack

from ...tasks import NewTask, Priority
from .base import NewTaskRow

# The columns a new task is written with, and their values (every SQL backend, every
# way a task is created: POST /tasks and workflow steps).
NEW_TASK_COLUMNS = (
    "id, workflow_id, step_id, item, name, run, params, priority, status, retry,"
    " timeout_seconds, created_at, run_after"
)


def new_task_values(task: NewTask, **new: Unpack[NewTaskRow]) -> tuple[Any, ...]:
    return (
        str(uuid.uuid4()),
        new.get("workflow_id"),
        new.get("step_id"),
        new.get("item"),
        task.name,
        task.run.model_dump_json(exclude_none=True),
        json.dumps(task.params),
        int(Priority.parse(task.priority)),
        new["status"],
        (task.retry or new["default_retry"]).model_dump_json(),
        task.timeout_seconds or new["default_timeout"],
        new["now"],
        0.0,
    )


def markers(marker: str, count: int = 13) -> str:
    return ",".join([marker] * count)
