"""The Store protocol: the domain verbs every storage backend implements.

The store is the only code that speaks SQL. Every verb is one transaction; a
verb that changes an attempt is fenced by ``(task_id, attempt)`` so that a late
answer from an attempt that was taken over changes nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Sequence
from typing import Any, Protocol, Required, TypedDict, Unpack

from ...execution import ProcessInfo
from ...tasks import NewTask, Outcome, RetryPolicy, TaskStatus, WorkflowStatus
from ..models import Attempt, Claim, LogLine, NewStep, NodeInfo, Step, Task, TaskPage, Workflow


class StoreError(Exception):
    """The backend failed; the message says how."""


def run_each(calls: Sequence[Callable[[], Any]]) -> list[tuple[bool, Any]]:
    """Run verbs one after the other, each its own transaction: ``(True, value)`` or
    ``(False, exception)`` each (a store without group commit batches so)."""
    outcomes: list[tuple[bool, Any]] = []
    for call in calls:
        try:
            outcomes.append((True, call()))
        except Exception as exc:
            outcomes.append((False, exc))
    return outcomes


class OneNode:
    """A store one node uses at a time (SQLite, SurrealDB; the pid file's lock sees to
    it): no lease another node could take, no other node queueing work."""

    shared = False

    def sibling(self) -> None:
        """Not shared: the heartbeat renews nothing another node could take."""
        return None

    def wait_for_work(self, timeout: float) -> bool:
        """No other node queues work to wait for."""
        time.sleep(timeout)
        return False


class TaskDefaults(TypedDict):
    """What a new task takes where its own definition says nothing, and when it is made."""

    default_timeout: float
    default_retry: RetryPolicy
    now: float


def task_defaults(given: TaskDefaults) -> TaskDefaults:
    """Only the task defaults of ``given`` (a :class:`NewWorkflow` holds more)."""
    return TaskDefaults(
        default_timeout=given["default_timeout"],
        default_retry=given["default_retry"],
        now=given["now"],
    )


class Enqueued(TaskDefaults, total=False):
    """``enqueue``'s options: a task of a workflow names it."""

    workflow_id: str | None


class NewTaskRow(Enqueued, total=False):
    """How a backend writes a new task: its status, the defaults, and where in a
    workflow it stands (``None``: not in one)."""

    status: Required[str]
    step_id: str | None
    item: int | None


class Heartbeat(TypedDict, total=False):
    """A node's heartbeat: ``held`` names the attempts it really supervises (``None``:
    every one it owns)."""

    now: Required[float]
    lease_seconds: Required[float]
    held: Collection[str] | None


class NewWorkflow(TaskDefaults):
    """What ``create_workflow`` persists: the workflow, all its steps, and the defaults
    its tasks take."""

    name: str
    version: str
    spec: dict[str, Any]
    priority: str
    parallel_limit: int
    rollback_enabled: bool
    steps: Sequence[NewStep]


class Ending(TypedDict, total=False):
    """How ``finish`` ends an attempt, besides its outcome (see :func:`ending_terms`)."""

    now: Required[float]
    retry_at: float | None
    counts: bool


def ending_terms(ending: Ending) -> tuple[float, float | None, bool]:
    """``now``, ``retry_at`` (no retry) and ``counts`` (the try counts) of an ending."""
    return ending["now"], ending.get("retry_at"), ending.get("counts", True)


class Store(Protocol):
    """Durable task queue, attempts, logs and results.

    ``shared`` says whether several orchestrator nodes may use the store at once
    (PostgreSQL). A store that is not shared has one node at a time (the pid file's
    lock sees to it), so at start every running attempt is an orphan; a shared store's
    orphans are the attempts whose lease expired.
    """

    shared: bool

    def migrate(self) -> int:
        """Apply pending schema migrations; return the schema version."""

    def close(self) -> None: ...

    def enqueue(self, task: NewTask, **options: Unpack[Enqueued]) -> Task:
        """Persist a new pending task; durable when this returns."""

    def claim(self, node_id: str, limit: int, *, now: float, lease_seconds: float) -> list[Claim]:
        """Move up to ``limit`` ready tasks to running for ``node_id``: highest priority
        first, FIFO within a priority, each under a lease with a new attempt."""

    def record_process(self, task_id: str, attempt: int, process: ProcessInfo) -> None:
        """Remember the process group of a running attempt (for orphan reaping)."""

    def heartbeat(self, node_id: str, **beat: Unpack[Heartbeat]) -> set[str]:
        """Mark ``node_id`` alive and extend the leases of its running tasks (only those
        in ``held``, the attempts it really supervises, when given); return those of
        them asked to cancel."""

    def register_node(
        self, node_id: str, *, host: str, pid: int, max_concurrent: int, now: float
    ) -> None: ...

    def deregister_node(self, node_id: str) -> None: ...

    def nodes(self) -> list[NodeInfo]:
        """Every registered node, with how many tasks it runs."""

    def purge_finished(self, *, before: float) -> dict[str, int]:
        """Delete the work that finished before ``before`` (tasks with their attempts and
        logs, workflows with their steps and edges); how many of each kind went."""

    def record_progress(
        self, task_id: str, progress: int, message: str | None, *, attempt: int | None = None
    ) -> Task | None:
        """Set a running task's progress; ``None`` when it is not running (or the
        attempt is stale)."""

    def append_logs(
        self, task_id: str, attempt: int, lines: Sequence[tuple[str, str, float]]
    ) -> None:
        """Append ``(stream, line, ts)`` log lines of an attempt; fenced like
        :meth:`finish`: nothing is stored unless it is the task's running attempt."""

    def finish(
        self, task_id: str, attempt: int, outcome: Outcome, **ending: Unpack[Ending]
    ) -> Task | None:
        """End an attempt. With ``retry_at`` the task goes back to pending, ready at that
        time; otherwise it takes the terminal status matching the outcome. ``counts=False``
        gives the try back (an interruption that was not the task's fault). Returns ``None``
        when the attempt is no longer the task's current running attempt (fenced)."""

    def request_cancel(self, task_id: str, *, now: float) -> Task | None:
        """Cancel a pending task at once, flag a running one; ``None`` if unknown."""

    def running_attempts(self, owner: str | None = None) -> list[tuple[Task, Attempt]]:
        """Running tasks with their current attempt, of ``owner`` or of every node."""

    def expired_leases(self, *, now: float) -> list[tuple[Task, Attempt]]:
        """Running tasks whose lease ran out: their node stopped heartbeating."""

    def get(self, task_id: str) -> Task | None: ...

    def list_tasks(self, *, status: TaskStatus | None, limit: int, offset: int) -> TaskPage: ...

    def attempts(self, task_id: str) -> list[Attempt]: ...

    def logs(self, task_id: str, *, after: int = 0, limit: int = 1000) -> list[LogLine]: ...

    def counts(self) -> dict[str, int]:
        """Number of tasks in each status."""

    def pending_by_priority(self) -> dict[str, int]:
        """Number of pending tasks of each priority (``low`` ... ``critical``)."""

    def next_ready_at(self) -> float | None:
        """Earliest ``run_after`` of a pending task, to sleep exactly until then."""

    def meta(self) -> dict[str, Any]:
        """Backend name and schema version, for health and status output."""

    def run_batch(self, calls: Sequence[Callable[[], Any]]) -> list[tuple[bool, Any]]:
        """Run several verbs, in one durable transaction where the backend can (group
        commit); each result is ``(True, value)`` or ``(False, exception)``."""

    def wait_for_work(self, timeout: float) -> bool:
        """Block until another node made tasks claimable (``True``) or ``timeout``
        passed (``False``). Only a ``shared`` store is asked."""

    def sibling(self) -> Store | None:
        """Another handle on the same database with a connection of its own, for the
        heartbeat (which must not wait behind this handle's verbs); ``None`` where the
        store is not shared (one node: no lease to lose to another)."""

    # -- workflows ----------------------------------------------------------------------

    def create_workflow(self, **new: Unpack[NewWorkflow]) -> Workflow:
        """Persist a workflow with all its steps and tasks in one transaction."""

    def cancel_workflow(self, workflow_id: str, *, now: float) -> tuple[Workflow, list[str]] | None:
        """Cancel what has not started and flag running tasks (returned, oldest first, for
        a local stop); ``None`` if unknown. A finished workflow is left as it is."""

    def reset_workflow(self, workflow_id: str, *, now: float) -> Workflow | None:
        """Resume from the checkpoint: tasks of the current phase that did not complete
        start again; completed ones are kept."""

    def request_rollback(self, workflow_id: str) -> Workflow | None:
        """Mark a finished workflow ``rollback_pending`` (the engine plans the undo)."""

    def begin_undo(
        self, workflow_id: str, steps: Sequence[NewStep], **defaults: Unpack[TaskDefaults]
    ) -> Workflow | None:
        """Add the undo steps and start the rollback; ``None`` unless the workflow was
        ``rollback_pending`` (a repeated call changes nothing)."""

    def get_workflow(self, workflow_id: str) -> Workflow | None: ...

    def workflow_spec(self, workflow_id: str) -> dict[str, Any] | None: ...

    def list_workflows(
        self, *, status: WorkflowStatus | None, limit: int, offset: int
    ) -> tuple[list[Workflow], int]:
        """A page of workflows, newest first, and how many there are in all."""

    def workflow_steps(self, workflow_id: str) -> list[Step]:
        """Run steps by position, then undo steps by position."""

    def workflow_tasks(self, workflow_id: str) -> list[Task]:
        """Every task of the workflow, oldest first."""

    def workflows_in(self, status: WorkflowStatus) -> list[Workflow]: ...
