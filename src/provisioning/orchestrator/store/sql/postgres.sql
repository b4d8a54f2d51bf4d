-- PostgreSQL's overrides of the named queries in workflow.sql.

-- Several nodes end tasks of one workflow at once: every transaction that changes a
-- workflow's counters, steps or not-started tasks locks its row first.
-- name: lock_workflow
SELECT {wf} FROM workflows WHERE id = ? FOR UPDATE;

-- A finish of the same attempt on another node waits here, then finds it no longer running.
-- name: lock_task
SELECT status, attempt FROM tasks WHERE id = ? FOR UPDATE;

-- name: extend_held_leases
UPDATE tasks SET lease_expires_at = ? WHERE status = 'running' AND owner = ?
  AND id IN (SELECT jsonb_array_elements_text(?::jsonb)) RETURNING id, cancel_requested;
