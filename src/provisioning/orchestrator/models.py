"""Domain records of the orchestrator: tasks, attempts, runners, retry policies."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..jsonlimits import MAX_PARAMS_BYTES as MAX_PARAMS_BYTES
from ..jsonlimits import check_params

NU_MODULE_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*(/[A-Za-z0-9_][A-Za-z0-9_.-]*)*$")
NU_FUNCTION_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
PY_MODULE_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
PY_FUNCTION_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class TaskStatus(StrEnum):
    # A workflow task waiting for the steps it depends on.
    BLOCKED = "blocked"
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"
    # A workflow task that will not run: what it depends on failed.
    SKIPPED = "skipped"

    @property
    def terminal(self) -> bool:
        return self not in (TaskStatus.BLOCKED, TaskStatus.PENDING, TaskStatus.RUNNING)


class WorkflowStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    ROLLBACK_PENDING = "rollback_pending"
    ROLLING_BACK = "rolling_back"
    ROLLED_BACK = "rolled_back"
    ROLLBACK_FAILED = "rollback_failed"

    @property
    def finished(self) -> bool:
        return self in (
            WorkflowStatus.COMPLETED,
            WorkflowStatus.FAILED,
            WorkflowStatus.CANCELLED,
            WorkflowStatus.ROLLED_BACK,
            WorkflowStatus.ROLLBACK_FAILED,
        )


class AttemptStatus(StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"
    # The orchestrator stopped (or died) while the attempt ran; it may not count.
    INTERRUPTED = "interrupted"
    LOST = "lost"


class Priority(IntEnum):
    LOW = 0
    NORMAL = 1
    HIGH = 2
    CRITICAL = 3

    @classmethod
    def parse(cls, name: str) -> Priority:
        return cls[name.upper()]

    @property
    def label(self) -> str:
        return self.name.lower()


class Backoff(StrEnum):
    LINEAR = "linear"
    EXPONENTIAL = "exponential"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RetryPolicy(_Strict):
    """How often and how soon a failed task is tried again (the original platform's defaults)."""

    max_attempts: Annotated[int, Field(ge=1, le=100, strict=True)] = 3
    backoff: Backoff = Backoff.EXPONENTIAL
    initial_delay: Annotated[float, Field(ge=0, le=86_400, strict=True)] = 5
    max_delay: Annotated[float, Field(ge=0, le=86_400, strict=True)] = 300

    def delay_before(self, attempt: int) -> float:
        """Seconds to wait before ``attempt`` (2 is the first retry)."""
        retries = max(attempt - 1, 1)
        if self.backoff is Backoff.LINEAR:
            delay = self.initial_delay * retries
        else:
            # Past 2**64 every delay is capped anyway; a huge power would overflow a float.
            delay = self.initial_delay * (2 ** min(retries - 1, 64))
        return float(min(delay, self.max_delay))


class NushellRun(_Strict):
    module: str
    function: str
    # An extra library folder (absolute), searched before the platform's: how a
    # taskserv catalog or a workspace's extensions provide their modules.
    lib: str | None = None

    @field_validator("lib")
    @classmethod
    def _absolute(cls, value: str | None) -> str | None:
        if value is not None and (not value.startswith("/") or "\0" in value):
            raise ValueError("must be an absolute folder path")
        return value

    @field_validator("module")
    @classmethod
    def _module_inside_library(cls, value: str) -> str:
        if value.startswith("/") or ".." in value.split("/") or not NU_MODULE_RE.fullmatch(value):
            raise ValueError(
                "must be a relative path inside the Nushell library "
                "(letters, digits, '_', '-', '.', '/'; no '..', not absolute)"
            )
        return value

    @field_validator("function")
    @classmethod
    def _function_name(cls, value: str) -> str:
        if not NU_FUNCTION_RE.fullmatch(value):
            raise ValueError("must be a Nushell command name (letters, digits, '_', '-')")
        return value


class PythonRun(_Strict):
    module: str
    function: str

    @field_validator("module")
    @classmethod
    def _module_name(cls, value: str) -> str:
        if not PY_MODULE_RE.fullmatch(value):
            raise ValueError("must be a dotted Python module name")
        return value

    @field_validator("function")
    @classmethod
    def _function_name(cls, value: str) -> str:
        if not PY_FUNCTION_RE.fullmatch(value):
            raise ValueError("must be a Python identifier")
        return value


class RunSpec(_Strict):
    """Exactly one runner: an argv list, a Nushell module function or a Python function."""

    command: Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1)] | None = None
    nushell: NushellRun | None = None
    python: PythonRun | None = None

    @field_validator("command")
    @classmethod
    def _no_nul(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and any("\0" in arg for arg in value):
            raise ValueError("arguments cannot contain NUL bytes")
        return value

    @model_validator(mode="after")
    def _exactly_one(self) -> RunSpec:
        given = [name for name in ("command", "nushell", "python") if getattr(self, name)]
        if len(given) != 1:
            raise ValueError(
                "give exactly one runner: 'command' (argv list), 'nushell' {module, function} "
                f"or 'python' {{module, function}}; got {given or 'none'}"
            )
        return self

    @property
    def kind(self) -> Literal["command", "nushell", "python"]:
        if self.command:
            return "command"
        return "nushell" if self.nushell else "python"


class NewTask(_Strict):
    """A task as submitted (``POST /tasks``)."""

    name: Annotated[str, Field(min_length=1, max_length=200)]
    run: RunSpec
    params: dict[str, Any] = {}
    priority: Literal["low", "normal", "high", "critical"] = "normal"
    timeout_seconds: Annotated[float, Field(gt=0, le=7 * 86_400)] | None = None
    retry: RetryPolicy | None = None

    @field_validator("name")
    @classmethod
    def _printable(cls, value: str) -> str:
        if not value.isprintable():
            raise ValueError("must be printable text (no control characters)")
        return value

    @field_validator("params")
    @classmethod
    def _bounded(cls, value: dict[str, Any]) -> dict[str, Any]:
        check_params(value, "params")
        return value


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

    @property
    def run_spec(self) -> RunSpec:
        return RunSpec.model_validate(self.run)


@dataclass(frozen=True)
class ProcessInfo:
    """Enough about a spawned process group to tell, later, whether it still lives."""

    pid: int
    pgid: int
    start_ticks: int
    boot_id: str


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
class Outcome:
    """How an attempt ended, as the executor saw it."""

    status: AttemptStatus
    exit_code: int | None = None
    error: str | None = None
    result: Any = None
    has_result: bool = False


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
