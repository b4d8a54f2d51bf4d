"""Domain records of the orchestrator: tasks, attempts, workflows and steps as stored.

What a task *is* (run forms, retry policy, statuses) is the contract in
:mod:`provisioning.tasks`; how a process group is identified is :mod:`provisioning.execution`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from ...execution.procfs import ProcessInfo
from ...tasks import (
    AttemptStatus,
    NewTask,
    Priority,
    RetryPolicy,
    RunSpec,
    TaskStatus,
    WorkflowStatus,
)


@dataclass(frozen=True)
class Task:
    """A task as stored."""

    id: str
    name: str
    run: dict[str, Any]
    params: dict[str, Any]
    priority: Priority
    status: TaskStatus
    retry: RetryPolicy
    timeout_seconds: float
    created_at: float
    seq: int = 0
    workflow_id: str | None = None
    progress: int = 0
    progress_message: str | None = None
    result: Any = None
    error: str | None = None
    attempt: int = 0
    tries: int = 0
    run_after: float = 0.0
    started_at: float | None = None
    completed_at: float | None = None
    owner: str | None = None
    lease_expires_at: float | None = None
    cancel_requested: bool = False
    step_id: str | None = None
    item: int | None = None
    # Set by ``Store.finish`` when ending this task moved its workflow to a new status.
    workflow_status: WorkflowStatus | None = None

    @cached_property
    def run_spec(self) -> RunSpec:
        # Validated once per record: the scheduler, the metrics and the traces each ask.
        return RunSpec.model_validate(self.run)


@dataclass(frozen=True)
class Attempt:
    task_id: str
    number: int
    node_id: str
    status: AttemptStatus
    started_at: float
    finished_at: float | None = None
    exit_code: int | None = None
    error: str | None = None
    process: ProcessInfo | None = None


@dataclass(frozen=True)
class LogLine:
    seq: int
    task_id: str
    attempt: int
    stream: str
    line: str
    ts: float


@dataclass(frozen=True)
class Claim:
    task: Task
    attempt: int


@dataclass(frozen=True)
class Workflow:
    """A workflow as stored, with its counters."""

    id: str
    name: str
    version: str
    status: WorkflowStatus
    phase: str
    failure: str | None
    error: str | None
    priority: Priority
    parallel_limit: int
    rollback_enabled: bool
    tasks_total: int
    tasks_open: int
    tasks_completed: int
    tasks_failed: int
    steps_completed: int
    checkpoint_at: float | None
    created_at: float
    started_at: float | None
    completed_at: float | None
    seq: int = 0


@dataclass(frozen=True)
class Step:
    """One operation of a workflow (``kind`` 'run', or 'undo' during a rollback)."""

    workflow_id: str
    step_id: str
    kind: str
    position: int
    layer: int
    on_failure: str
    status: str
    waiting_on: int
    total: int
    completed: int
    failed: int
    finished_at: float | None
    depends_on: tuple[str, ...] = ()


@dataclass(frozen=True)
class NewStep:
    """A step to create, with its tasks (one per item)."""

    step_id: str
    kind: str
    position: int
    layer: int
    on_failure: str
    depends_on: tuple[str, ...]
    tasks: tuple[NewTask, ...]


@dataclass(frozen=True)
class NodeInfo:
    """An orchestrator node sharing the store."""

    id: str
    host: str
    pid: int
    max_concurrent: int
    started_at: float
    last_seen: float
    running: int = 0


@dataclass
class TaskPage:
    tasks: list[Task] = field(default_factory=list)
    total: int = 0
