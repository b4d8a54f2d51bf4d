"""Retention (``storage.retention_days``) for the SQL backends: the named queries of
``sql/retention.sql``, one set for SQLite and PostgreSQL."""

from __future__ import annotations

from .sql_dialect import SqlDialect

# (query, table it empties, how many times the cut-off appears in it), in order.
_PURGE = (
    ("purge_task_logs", "task_logs", 2),
    ("purge_attempts", "attempts", 2),
    ("purge_tasks", "tasks", 2),
    ("purge_workflow_edges", "workflow_edges", 1),
    ("purge_workflow_steps", "workflow_steps", 1),
    ("purge_workflow_specs", "workflow_specs", 1),
    ("purge_workflows", "workflows", 1),
)


class SqlRetention(SqlDialect):
    """Deletes finished work older than a cut-off, in one transaction."""

    def purge_finished(self, *, before: float) -> dict[str, int]:
        """Delete what finished before ``before``; return how many rows of each kind."""
        removed: dict[str, int] = {}
        with self._tx() as db:
            for query, table, cutoffs in _PURGE:
                cursor = self._q(db, query, *((before,) * cutoffs))
                removed[table] = max(int(cursor.rowcount), 0)
        return removed
