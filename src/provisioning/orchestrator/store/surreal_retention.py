"""Retention (``storage.retention_days``) for the SurrealDB store: the same rule as
``sql/retention.sql`` in SurrealQL -- finished tasks with their attempts and logs, and
finished workflows with everything of theirs, once older than the cut-off."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, TypeVar

from ...tasks import TaskStatus, WorkflowStatus
from .surreal_rows import key_of, rid
from .surreal_tx import Tx

T = TypeVar("T")

_DONE_TASKS = sorted(s.value for s in TaskStatus if s.terminal)
_DONE_WORKFLOWS = sorted(s.value for s in WorkflowStatus if s.finished)
# (what the answer calls it, table, field naming the owner, whose ids), in order.
_PURGE = (
    ("task_logs", "task_log", "task_id", "task"),
    ("attempts", "attempt", "task_id", "task"),
    ("workflow_edges", "wf_edge", "workflow_id", "workflow"),
    ("workflow_steps", "wf_step", "workflow_id", "workflow"),
)


class SurrealRetention(ABC):
    """Mixed into :class:`~.surreal.SurrealStore`."""

    @abstractmethod
    def _transact(self, build: Callable[[Tx], T]) -> T: ...

    @abstractmethod
    def _select(self, sql: str, **params: Any) -> list[dict[str, Any]]: ...

    def purge_finished(self, *, before: float) -> dict[str, int]:
        """Delete what finished before ``before``; return how many records of each kind."""

        def keys(sql: str, **params: Any) -> list[str]:
            return [str(key_of(row)) for row in self._select(sql, before=before, **params)]

        def build(tx: Tx) -> dict[str, int]:
            workflows = keys(
                "SELECT id FROM workflow WHERE status IN $done AND completed_at < $before",
                done=_DONE_WORKFLOWS,
            )
            owners = {"workflow": workflows}
            owners["task"] = keys(
                "SELECT id FROM task WHERE (!workflow_id AND status IN $done"
                " AND completed_at < $before) OR workflow_id IN $workflows",
                done=_DONE_TASKS,
                workflows=workflows,
            )
            removed: dict[str, int] = {}
            for name, table, field, owner in _PURGE:
                ids = owners[owner]
                found = self._select(f"SELECT id FROM {table} WHERE {field} IN $ids", ids=ids)
                removed[name] = len(found)
                if found:
                    tx.add(f"DELETE {table} WHERE {field} IN $ids RETURN NONE", ids=ids)
            for name, table in (("tasks", "task"), ("workflows", "workflow")):
                removed[name] = len(owners[table])
                if owners[table]:
                    records = [rid(table, key) for key in owners[table]]
                    tx.add("DELETE $ids RETURN NONE", ids=records)
            return removed

        return self._transact(build)
