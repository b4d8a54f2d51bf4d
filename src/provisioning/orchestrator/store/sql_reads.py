"""The read verbs of the SQL backends (SQLite, PostgreSQL): the same queries, only the
drivers' parameter markers differ (``?`` and ``%s``), so one class serves both."""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

from ...tasks import Priority, TaskStatus, WorkflowStatus
from ..models import Attempt, LogLine, NodeInfo, Step, Task, TaskPage, Workflow
from .rows import Row, attempt_of, log_line_of, node_of, step_of, task_of, workflow_of

# Every column of a workflow but its spec, which can be large and is read only to
# plan a rollback.
WF = (
    "id, seq, name, version, status, phase, failure, error, priority, parallel_limit,"
    " rollback_enabled, tasks_total, tasks_open, tasks_completed, tasks_failed,"
    " steps_completed, checkpoint_at, created_at, started_at, completed_at"
)


class SqlReads(ABC):
    """The read verbs of a SQL store that provides ``_query`` and its parameter marker."""

    P = "?"

    @abstractmethod
    def _query(self, sql: str, args: Sequence[Any] = ()) -> list[Any]: ...

    def _rows(self, sql: str, *args: Any) -> list[Row]:
        """``sql`` with ``{p}`` standing for each parameter marker."""
        rows: list[Row] = self._query(sql.format(p=self.P, wf=WF), args)
        return rows

    # -- tasks --------------------------------------------------------------------------

    def get(self, task_id: str) -> Task | None:
        rows = self._rows("SELECT * FROM tasks WHERE id = {p}", task_id)
        return task_of(rows[0]) if rows else None

    def list_tasks(self, *, status: TaskStatus | None, limit: int, offset: int) -> TaskPage:
        where, args = ("WHERE status = {p}", [status.value]) if status else ("", [])
        total = self._rows(f"SELECT COUNT(*) AS n FROM tasks {where}", *args)[0]["n"]
        rows = self._rows(
            f"SELECT * FROM tasks {where} ORDER BY seq DESC LIMIT {{p}} OFFSET {{p}}",
            *args,
            limit,
            offset,
        )
        return TaskPage(tasks=[task_of(row) for row in rows], total=total)

    def workflow_tasks(self, workflow_id: str) -> list[Task]:
        rows = self._rows("SELECT * FROM tasks WHERE workflow_id = {p} ORDER BY seq", workflow_id)
        return [task_of(row) for row in rows]

    def attempts(self, task_id: str) -> list[Attempt]:
        rows = self._rows("SELECT * FROM attempts WHERE task_id = {p} ORDER BY number", task_id)
        return [attempt_of(row) for row in rows]

    def logs(self, task_id: str, *, after: int = 0, limit: int = 1000) -> list[LogLine]:
        rows = self._rows(
            "SELECT * FROM task_logs WHERE task_id = {p} AND seq > {p} ORDER BY seq LIMIT {p}",
            task_id,
            after,
            limit,
        )
        return [log_line_of(row) for row in rows]

    def counts(self) -> dict[str, int]:
        rows = self._rows("SELECT status, COUNT(*) AS n FROM tasks GROUP BY status")
        found = {row["status"]: row["n"] for row in rows}
        return {status.value: found.get(status.value, 0) for status in TaskStatus}

    def pending_by_priority(self) -> dict[str, int]:
        rows = self._rows(
            "SELECT priority, COUNT(*) AS n FROM tasks WHERE status = 'pending' GROUP BY priority"
        )
        found = {Priority(int(row["priority"])).label: int(row["n"]) for row in rows}
        return {priority.label: found.get(priority.label, 0) for priority in Priority}

    def next_ready_at(self) -> float | None:
        rows = self._rows("SELECT MIN(run_after) AS t FROM tasks WHERE status = 'pending'")
        value = rows[0]["t"]
        return None if value is None else float(value)

    def nodes(self) -> list[NodeInfo]:
        rows = self._rows(
            "SELECT n.*, (SELECT COUNT(*) FROM tasks t WHERE t.status = 'running'"
            " AND t.owner = n.id) AS running FROM nodes n ORDER BY n.started_at, n.id"
        )
        return [node_of(row) for row in rows]

    # -- workflows ----------------------------------------------------------------------

    def workflow_spec(self, workflow_id: str) -> dict[str, Any] | None:
        rows = self._rows("SELECT spec FROM workflows WHERE id = {p}", workflow_id)
        if not rows:
            return None
        spec: dict[str, Any] = json.loads(rows[0]["spec"])
        return spec

    def get_workflow(self, workflow_id: str) -> Workflow | None:
        rows = self._rows("SELECT {wf} FROM workflows WHERE id = {p}", workflow_id)
        return workflow_of(rows[0]) if rows else None

    def list_workflows(
        self, *, status: WorkflowStatus | None, limit: int, offset: int
    ) -> tuple[list[Workflow], int]:
        where, args = ("WHERE status = {p}", [status.value]) if status else ("", [])
        total = self._rows(f"SELECT COUNT(*) AS n FROM workflows {where}", *args)[0]["n"]
        rows = self._rows(
            f"SELECT {{wf}} FROM workflows {where} ORDER BY seq DESC LIMIT {{p}} OFFSET {{p}}",
            *args,
            limit,
            offset,
        )
        return [workflow_of(row) for row in rows], total

    def workflow_steps(self, workflow_id: str) -> list[Step]:
        edges: dict[str, list[str]] = {}
        for row in self._rows(
            "SELECT step_id, dependent_id FROM workflow_edges WHERE workflow_id = {p}",
            workflow_id,
        ):
            edges.setdefault(row["dependent_id"], []).append(row["step_id"])
        rows = self._rows(
            "SELECT * FROM workflow_steps WHERE workflow_id = {p} ORDER BY kind = 'undo', position",
            workflow_id,
        )
        return [step_of(row, edges.get(row["step_id"], [])) for row in rows]

    def workflows_in(self, status: WorkflowStatus) -> list[Workflow]:
        rows = self._rows(
            "SELECT {wf} FROM workflows WHERE status = {p} ORDER BY seq", status.value
        )
        return [workflow_of(row) for row in rows]
