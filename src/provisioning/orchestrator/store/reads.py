"""The read verbs of every store, once, over named queries: ``sql/reads.sql`` for
SQLite and PostgreSQL, ``sql/surreal.surql`` (the same names) for SurrealDB.
A store gives ``_read``: the rows of one named query, as :mod:`.rows` reads them."""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Iterable
from sys import intern
from typing import Any

from ...tasks import Priority, TaskStatus, WorkflowStatus
from ..models import Attempt, LogLine, NodeInfo, Step, Task, TaskPage, Workflow
from ..models.records import (
    Row,
    attempt_of,
    log_line_of,
    node_of,
    step_of,
    task_of,
    workflow_of,
)


def _filter(status: TaskStatus | WorkflowStatus | None) -> tuple[bool, str | None]:
    """The arguments of a ``(? OR status = ?)`` filter."""
    return status is None, None if status is None else status.value


class Reads(ABC):
    @abstractmethod
    def _read(self, name: str, *args: Any) -> list[Row]: ...

    def _first(self, name: str, field: str, *args: Any) -> Any:
        """One value of a one-row query (an aggregate that matched nothing: ``None``)."""
        rows = self._read(name, *args)
        return rows[0][field] if rows else None

    # -- tasks --------------------------------------------------------------------------

    def get(self, task_id: str) -> Task | None:
        rows = self._read("task", task_id)
        return task_of(rows[0]) if rows else None

    def list_tasks(self, *, status: TaskStatus | None, limit: int, offset: int) -> TaskPage:
        total = self._first("count_tasks", "n", *_filter(status)) or 0
        rows = self._read("page_tasks", *_filter(status), limit, offset)
        return TaskPage(tasks=[task_of(row) for row in rows], total=total)

    def workflow_tasks(self, workflow_id: str) -> list[Task]:
        return [task_of(row) for row in self._read("workflow_tasks", workflow_id)]

    def attempts(self, task_id: str) -> list[Attempt]:
        return [attempt_of(row) for row in self._read("attempts", task_id)]

    def logs(self, task_id: str, *, after: int = 0, limit: int = 1000) -> list[LogLine]:
        return [log_line_of(row) for row in self._read("logs", task_id, after, limit)]

    def counts(self) -> dict[str, int]:
        found = {row["status"]: row["n"] for row in self._read("counts")}
        return {status.value: found.get(status.value, 0) for status in TaskStatus}

    def pending_by_priority(self) -> dict[str, int]:
        rows = self._read("pending_by_priority")
        found = {Priority(int(row["priority"])).label: int(row["n"]) for row in rows}
        return {priority.label: found.get(priority.label, 0) for priority in Priority}

    def next_ready_at(self) -> float | None:
        value = self._first("next_ready_at", "t")
        return None if value is None else float(value)

    def running_attempts(self, owner: str | None = None) -> list[tuple[Task, Attempt]]:
        return self._running_with_attempts(owner, None)

    def expired_leases(self, *, now: float) -> list[tuple[Task, Attempt]]:
        return self._running_with_attempts(None, now)

    def _running_with_attempts(
        self, owner: str | None, expired_before: float | None
    ) -> list[tuple[Task, Attempt]]:
        args = (owner is None, owner, expired_before is None, expired_before)
        rows = self._read("running_with_attempts", *args)
        return [(task_of(row), attempt_of(row, prefix="a_")) for row in rows]

    def nodes(self) -> list[NodeInfo]:
        return [node_of(row) for row in self._read("nodes")]

    # -- workflows ----------------------------------------------------------------------

    def workflow_spec(self, workflow_id: str) -> dict[str, Any] | None:
        rows = self._read("workflow_spec", workflow_id)
        if not rows:
            return None
        spec: dict[str, Any] = json.loads(rows[0]["spec"])
        return spec

    def get_workflow(self, workflow_id: str) -> Workflow | None:
        rows = self._read("workflow", workflow_id)
        return workflow_of(rows[0]) if rows else None

    def list_workflows(
        self, *, status: WorkflowStatus | None, limit: int, offset: int
    ) -> tuple[list[Workflow], int]:
        total = self._first("count_workflows", "n", *_filter(status)) or 0
        rows = self._read("page_workflows", *_filter(status), limit, offset)
        return [workflow_of(row) for row in rows], total

    def _each(self, name: str, *args: Any) -> Iterable[Row]:
        """The rows of a read one at a time, where the driver can stream them."""
        return self._read(name, *args)

    def workflow_steps(self, workflow_id: str) -> list[Step]:
        # A million edges name 10,000 steps: one string per name, not two per edge.
        edges: dict[str, list[str]] = {}
        for row in self._each("workflow_edges", workflow_id):
            edges.setdefault(intern(row["dependent_id"]), []).append(intern(row["step_id"]))
        rows = self._read("workflow_steps", workflow_id)
        return [step_of(row, edges.get(row["step_id"], [])) for row in rows]

    def workflows_in(self, status: WorkflowStatus) -> list[Workflow]:
        return [workflow_of(row) for row in self._read("workflows_in", status.value)]
