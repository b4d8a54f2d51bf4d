"""Retention (``storage.retention_days``) for the SurrealDB store: the same rule as
``sql/retention.sql`` in SurrealQL -- finished tasks with their attempts and logs, and
finished workflows with everything of theirs, once older than the cut-off."""

from __future__ import annotations

from typing import Any

from ...tasks import TaskStatus, WorkflowStatus
from .surreal_tx import SurrealVerbs, Tx, key_of, rid

_DONE_TASKS = sorted(s.value for s in TaskStatus if s.terminal)
_DONE_WORKFLOWS = sorted(s.value for s in WorkflowStatus if s.finished)
# (what the answer calls it, table, whose ids), in order; sql/surreal.surql has the
# queries owned_<table> and purge_<table> of each.
_PURGE = (
    ("task_logs", "task_log", "task"),
    ("attempts", "attempt", "task"),
    ("workflow_edges", "wf_edge", "workflow"),
    ("workflow_steps", "wf_step", "workflow"),
)


class SurrealRetention(SurrealVerbs):
    """Mixed into :class:`~.surreal.SurrealStore`."""

    def purge_finished(self, *, before: float) -> dict[str, int]:
        """Delete what finished before ``before``; return how many records of each kind."""

        def keys(name: str, **params: Any) -> list[str]:
            return [str(key_of(row)) for row in self._select(name, before=before, **params)]

        def build(tx: Tx) -> dict[str, int]:
            workflows = keys("finished_workflows", done=_DONE_WORKFLOWS)
            owners = {"workflow": workflows}
            owners["task"] = keys("finished_tasks", done=_DONE_TASKS, workflows=workflows)
            removed: dict[str, int] = {}
            for name, table, owner in _PURGE:
                found = self._select(f"owned_{table}", ids=owners[owner])
                removed[name] = len(found)
                if found:
                    tx.run(f"purge_{table}", ids=owners[owner])
            for name, table in (("tasks", "task"), ("workflows", "workflow")):
                removed[name] = len(owners[table])
                if owners[table]:
                    tx.run("delete", id=[rid(table, key) for key in owners[table]])
            return removed

        return self._transact(build)
