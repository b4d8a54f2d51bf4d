"""Stored rows as domain records: one reader per record, for every store (the SQL rows
as the drivers give them; SurrealDB's records through an adapter), so the backends
cannot drift in how they read what they store."""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Iterable
from typing import Any, Protocol

from ...execution.procfs import ProcessInfo
from ...tasks import AttemptStatus, NewTask, Priority, RetryPolicy, TaskStatus, WorkflowStatus
from . import Attempt, Claim, LogLine, NodeInfo, Step, Task, Workflow

# The fields a new task is written with, in the order of the SQL stores' columns.
NEW_TASK_FIELDS = (
    "id",
    "workflow_id",
    "step_id",
    "item",
    "name",
    "run",
    "params",
    "priority",
    "status",
    "retry",
    "timeout_seconds",
    "created_at",
    "run_after",
)


def new_task_fields(
    task: NewTask,
    *,
    status: str,
    default_retry: RetryPolicy,
    default_timeout: float,
    now: float,
    workflow_id: str | None = None,
    step_id: str | None = None,
    item: int | None = None,
) -> dict[str, Any]:
    """A new task as every store writes it, however it is made (``POST /tasks``, a
    workflow step): the defaults fill in what its definition leaves out."""
    return {
        "id": str(uuid.uuid4()),
        "workflow_id": workflow_id,
        "step_id": step_id,
        "item": item,
        "name": task.name,
        "run": task.run.model_dump_json(exclude_none=True),
        "params": json.dumps(task.params),
        "priority": int(Priority.parse(task.priority)),
        "status": status,
        "retry": (task.retry or default_retry).model_dump_json(),
        "timeout_seconds": float(task.timeout_seconds or default_timeout),
        "created_at": float(now),
        "run_after": 0.0,
    }


class Row(Protocol):
    """What both drivers' rows offer: values by column name."""

    def __getitem__(self, key: str) -> Any: ...


@functools.lru_cache(maxsize=256)
def retry_policy(text: str) -> RetryPolicy:
    # Most tasks share a handful of policies: parse each text once.
    return RetryPolicy.model_validate_json(text)


def same_columns(row: Row, names: Iterable[str]) -> dict[str, Any]:
    """The values of ``names``, columns whose field of the same name takes them as they are."""
    return {name: row[name] for name in names}


# The fields of a Task that its row holds under the same name, as they are.
_TASK_COLUMNS = (
    "id",
    "seq",
    "workflow_id",
    "name",
    "timeout_seconds",
    "progress",
    "progress_message",
    "error",
    "attempt",
    "tries",
    "run_after",
    "created_at",
    "started_at",
    "completed_at",
    "owner",
    "lease_expires_at",
    "step_id",
    "item",
)


def task_of(row: Row) -> Task:
    return Task(
        **same_columns(row, _TASK_COLUMNS),
        run=json.loads(row["run"]),
        params=json.loads(row["params"]),
        priority=Priority(row["priority"]),
        status=TaskStatus(row["status"]),
        retry=retry_policy(row["retry"]),
        result=None if row["result"] is None else json.loads(row["result"]),
        cancel_requested=bool(row["cancel_requested"]),
    )


def claims_of(rows: Iterable[Row]) -> list[Claim]:
    """The claims of just-claimed rows, in pick order (RETURNING does not keep it)."""
    claims = [Claim(task=task_of(row), attempt=row["attempt"]) for row in rows]
    claims.sort(key=lambda c: (-c.task.priority, c.task.seq))
    return claims


def attempt_of(row: Row, prefix: str = "") -> Attempt:
    """An attempt from its row; ``prefix`` names the columns that a join with
    ``tasks`` renamed (``a_status``, ``a_started_at``, ``a_error``)."""
    process = None
    if row["pid"] is not None:
        process = ProcessInfo(
            pid=row["pid"], pgid=row["pgid"], start_ticks=row["start_ticks"], boot_id=row["boot_id"]
        )
    return Attempt(
        task_id=row["task_id"],
        number=row["number"],
        node_id=row["node_id"],
        status=AttemptStatus(row[prefix + "status"]),
        started_at=row[prefix + "started_at"],
        finished_at=row["finished_at"],
        exit_code=row["exit_code"],
        error=row[prefix + "error"],
        process=process,
    )


# The fields of a Workflow that its row holds under the same name, as they are.
_WORKFLOW_COLUMNS = (
    "id",
    "seq",
    "name",
    "version",
    "phase",
    "failure",
    "error",
    "parallel_limit",
    "tasks_total",
    "tasks_open",
    "tasks_completed",
    "tasks_failed",
    "steps_completed",
    "checkpoint_at",
    "created_at",
    "started_at",
    "completed_at",
)


def workflow_of(row: Row) -> Workflow:
    return Workflow(
        **same_columns(row, _WORKFLOW_COLUMNS),
        status=WorkflowStatus(row["status"]),
        priority=Priority(row["priority"]),
        rollback_enabled=bool(row["rollback_enabled"]),
    )


# The fields a new step is written with, in the order of the SQL stores' columns.
NEW_STEP_FIELDS = (
    "workflow_id",
    "step_id",
    "kind",
    "position",
    "layer",
    "on_failure",
    "status",
    "waiting_on",
    "total",
)
# The fields of a Step that its row holds under the same name, as they are.
_STEP_COLUMNS = (*NEW_STEP_FIELDS, "completed", "failed", "finished_at")


def step_of(row: Row, depends_on: Iterable[str]) -> Step:
    return Step(
        **same_columns(row, _STEP_COLUMNS),
        depends_on=tuple(sorted(depends_on)),
    )


def node_of(row: Row) -> NodeInfo:
    return NodeInfo(
        id=row["id"],
        host=row["host"],
        pid=row["pid"],
        max_concurrent=row["max_concurrent"],
        started_at=row["started_at"],
        last_seen=row["last_seen"],
        running=row["running"],
    )


def log_line_of(row: Row) -> LogLine:
    return LogLine(
        row["seq"], row["task_id"], row["attempt"], row["stream"], row["line"], row["ts"]
    )
