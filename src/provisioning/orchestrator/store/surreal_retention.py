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


class SurrealRetention(ABC):
    """Mixed into :class:`~.surreal.SurrealStore`."""

    @abstractmethod
    def _transact(self, build: Callable[[Tx], T]) -> T: ...

    @abstractmethod
    def _select(self, sql: str, **params: Any) -> list[dict[str, Any]]: ...

    def purge_finished(self, *, before: float) -> dict[str, int]:
        """Delete what finished before ``before``; return how many records of each kind."""

        def build(tx: Tx) -> dict[str, int]:
            workflows = [
                str(key_of(row))
                for row in self._select(
                    "SELECT id FROM workflow WHERE status IN $done AND completed_at < $before",
                    done=_DONE_WORKFLOWS,
                    before=before,
                )
            ]
            tasks = [
                str(key_of(row))
                for row in self._select(
                    "SELECT id FROM task WHERE (!workflow_id AND status IN $done"
                    " AND completed_at < $before) OR workflow_id IN $workflows",
                    done=_DONE_TASKS,
                    before=before,
                    workflows=workflows,
                )
            ]
            removed: dict[str, int] = {}
            for table, field, ids in (
                ("task_log", "task_id", tasks),
                ("attempt", "task_id", tasks),
                ("wf_edge", "workflow_id", workflows),
                ("wf_step", "workflow_id", workflows),
            ):
                found = self._select(f"SELECT id FROM {table} WHERE {field} IN $ids", ids=ids)
                removed[table] = len(found)
                if found:
                    tx.add(f"DELETE {table} WHERE {field} IN $ids RETURN NONE", ids=ids)
            for table, ids in (("task", tasks), ("workflow", workflows)):
                removed[table] = len(ids)
                if ids:
                    tx.add("DELETE $ids RETURN NONE", ids=[rid(table, key) for key in ids])
            return {
                "task_logs": removed["task_log"],
                "attempts": removed["attempt"],
                "tasks": removed["task"],
                "workflow_edges": removed["wf_edge"],
                "workflow_steps": removed["wf_step"],
                "workflows": removed["workflow"],
            }

        return self._transact(build)
