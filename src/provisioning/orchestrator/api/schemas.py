"""Response shapes of the API (request shapes are the domain models)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BaseModel, Field

from ..models import Attempt, LogLine, Task


def iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat()


def same_named(record: object, view: type[BaseModel], **given: Any) -> dict[str, Any]:
    """A view's fields: those ``given``, the other required ones read from the record's
    attribute of the same name (a view mostly says again what its record holds)."""
    return {
        name: given[name] if name in given else getattr(record, name)
        for name, spec in view.model_fields.items()
        if name in given or spec.is_required()
    }


class AttemptView(BaseModel):
    number: int
    node_id: str
    status: str
    started_at: str | None
    finished_at: str | None
    exit_code: int | None
    error: str | None
    pid: int | None

    @classmethod
    def of(cls, attempt: Attempt) -> AttemptView:
        return cls(
            **same_named(
                attempt,
                cls,
                status=attempt.status.value,
                started_at=iso(attempt.started_at),
                finished_at=iso(attempt.finished_at),
                pid=attempt.process.pid if attempt.process else None,
            )
        )


class TaskView(BaseModel):
    id: str
    name: str
    status: str
    priority: str
    progress: int
    progress_message: str | None
    result: Any
    error: str | None
    run: dict[str, Any]
    params: dict[str, Any]
    workflow_id: str | None
    attempt: int
    retry: dict[str, Any]
    timeout_seconds: float
    cancel_requested: bool
    next_attempt_at: str | None
    created_at: str | None
    started_at: str | None
    completed_at: str | None
    attempts: list[AttemptView] | None = None
    # While it runs on the node answering: its process tree's CPU seconds and memory.
    usage: dict[str, float | int | None] | None = None

    @classmethod
    def of(cls, task: Task, attempts: list[Attempt] | None = None) -> TaskView:
        waiting = task.status.value == "pending" and task.attempt > 0
        return cls(
            **same_named(
                task,
                cls,
                status=task.status.value,
                priority=task.priority.label,
                retry=task.retry.model_dump(mode="json"),
                next_attempt_at=iso(task.run_after) if waiting else None,
                created_at=iso(task.created_at),
                started_at=iso(task.started_at),
                completed_at=iso(task.completed_at),
                attempts=None if attempts is None else [AttemptView.of(a) for a in attempts],
            )
        )


class TaskPageView(BaseModel):
    tasks: list[TaskView]
    total: int
    limit: int
    offset: int


class SubmittedView(BaseModel):
    task_id: str
    status: str = "queued"


class LogLineView(BaseModel):
    seq: int
    attempt: int
    stream: str
    line: str
    ts: str | None

    @classmethod
    def of(cls, line: LogLine) -> LogLineView:
        return cls(
            seq=line.seq, attempt=line.attempt, stream=line.stream, line=line.line, ts=iso(line.ts)
        )


class LogsView(BaseModel):
    task_id: str
    lines: list[LogLineView]
    next_after: int


class ProgressReport(BaseModel):
    model_config = {"extra": "forbid"}

    progress: Annotated[int, Field(ge=0, le=100)]
    message: Annotated[str, Field(max_length=1000)] | None = None
    # The seed's handlers send a status too ("in_progress"); it is accepted and ignored.
    status: str | None = None


class ErrorView(BaseModel):
    error: str
    detail: Any = None
