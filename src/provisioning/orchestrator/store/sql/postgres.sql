-- PostgreSQL's overrides of the named queries (queue.sql, workflow.sql), and its own.

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

-- name: ready_candidates
SELECT seq, workflow_id FROM tasks WHERE status = 'pending' AND run_after <= ?
  AND (workflow_id IS NULL OR workflow_id <> ALL(?::text[])) AND seq <> ALL(?::bigint[])
  ORDER BY priority DESC, seq LIMIT ?;

-- name: claim_tasks
UPDATE tasks SET status = 'running', attempt = attempt + 1, tries = tries + 1, owner = ?,
  lease_expires_at = ?, started_at = COALESCE(started_at, ?), progress = 0,
  progress_message = NULL WHERE seq = ANY(?::bigint[]) RETURNING *;

-- name: start_workflows
UPDATE workflows SET status = 'running', started_at = ?
  WHERE id = ANY(?::text[]) AND status = 'queued';

-- Claiming on PostgreSQL only: the chosen tasks, each unless another claimer holds it.
-- name: lock_ready
SELECT seq FROM tasks WHERE seq = ANY(?::bigint[]) AND status = 'pending' AND run_after <= ?
  FOR UPDATE SKIP LOCKED;

-- The candidates' workflows, in id order: waiting for them (the first round) ...
-- name: lock_workflows
SELECT id, parallel_limit FROM workflows WHERE id = ANY(?::text[]) ORDER BY id FOR UPDATE;

-- ... or skipping those another transaction holds (later rounds).
-- name: lock_free_workflows
SELECT id, parallel_limit FROM workflows WHERE id = ANY(?::text[]) ORDER BY id
  FOR UPDATE SKIP LOCKED;

-- name: running_in_workflows
SELECT workflow_id, COUNT(*) AS n FROM tasks WHERE status = 'running'
  AND workflow_id = ANY(?::text[]) GROUP BY workflow_id;

-- name: workflows_exist
SELECT id FROM workflows WHERE id = ANY(?::text[]);

-- name: schema_version_table
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY,
  applied_at DOUBLE PRECISION NOT NULL);

-- name: record_version
INSERT INTO schema_version (version, applied_at) VALUES (?, EXTRACT(EPOCH FROM clock_timestamp()));

-- load(): what the store holds already (it must be empty), and a table's columns.
-- name: count_work
SELECT (SELECT COUNT(*) FROM tasks) + (SELECT COUNT(*) FROM workflows) AS n;

-- name: table_columns
SELECT column_name FROM information_schema.columns
  WHERE table_schema = current_schema() AND table_name = ? ORDER BY ordinal_position;
