"""Retention (``storage.retention_days``) for the SQL backends: finished tasks with
their attempts and logs, and finished workflows with everything of theirs, once
older than the cut-off. The same statements for SQLite and PostgreSQL."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any

_TASK_DONE = "('completed', 'failed', 'cancelled', 'timed_out', 'skipped')"
_WORKFLOW_DONE = "('completed', 'failed', 'cancelled', 'rolled_back', 'rollback_failed')"
_OLD_WORKFLOWS = (
    f"SELECT id FROM workflows WHERE status IN {_WORKFLOW_DONE} AND completed_at < {{p}}"
)
_OLD_TASKS = (
    f"SELECT id FROM tasks WHERE (workflow_id IS NULL AND status IN {_TASK_DONE} "
    f"AND completed_at < {{p}}) OR workflow_id IN ({_OLD_WORKFLOWS})"
)
# (statement, how many times the cut-off appears in it); tasks before their workflows.
_PURGE = (
    (f"DELETE FROM task_logs WHERE task_id IN ({_OLD_TASKS})", 2),
    (f"DELETE FROM attempts WHERE task_id IN ({_OLD_TASKS})", 2),
    (f"DELETE FROM tasks WHERE id IN ({_OLD_TASKS})", 2),
    (f"DELETE FROM workflow_edges WHERE workflow_id IN ({_OLD_WORKFLOWS})", 1),
    (f"DELETE FROM workflow_steps WHERE workflow_id IN ({_OLD_WORKFLOWS})", 1),
    (f"DELETE FROM workflows WHERE id IN ({_OLD_WORKFLOWS})", 1),
)


class SqlRetention:
    """Mixed into a SQL store that provides ``_tx`` and its parameter marker ``P``."""

    P = "?"

    def _tx(self, durable: bool = True) -> AbstractContextManager[Any]:
        raise NotImplementedError

    def purge_finished(self, *, before: float) -> dict[str, int]:
        """Delete what finished before ``before``; return how many rows of each kind."""
        removed: dict[str, int] = {}
        with self._tx() as db:
            for statement, cutoffs in _PURGE:
                cursor = db.execute(statement.format(p=self.P), (before,) * cutoffs)
                table = statement.split()[2]
                removed[table] = max(int(cursor.rowcount), 0)
        return removed
