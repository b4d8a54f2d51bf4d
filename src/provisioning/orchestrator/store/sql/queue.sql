-- The task queue queries of the SQL stores (SQLite and PostgreSQL), by name; the
-- conventions of workflow.sql. PostgreSQL picks what it claims its own way (SKIP LOCKED).

-- name: insert_task
INSERT INTO tasks ({new_task_columns}) VALUES ({new_task_markers}) RETURNING *;

-- name: record_process
UPDATE attempts SET pid = ?, pgid = ?, start_ticks = ?, boot_id = ?
  WHERE task_id = ? AND number = ?;

-- name: touch_node
UPDATE nodes SET last_seen = ? WHERE id = ?;

-- name: extend_leases
UPDATE tasks SET lease_expires_at = ? WHERE status = 'running' AND owner = ?
  RETURNING id, cancel_requested;

-- The third parameter: a JSON array of the task ids whose leases the node renews.
-- name: extend_held_leases
UPDATE tasks SET lease_expires_at = ? WHERE status = 'running' AND owner = ?
  AND id IN (SELECT value FROM json_each(?)) RETURNING id, cancel_requested;

-- name: register_node
INSERT INTO nodes (id, host, pid, max_concurrent, started_at, last_seen) VALUES (?, ?, ?, ?, ?, ?);

-- name: deregister_node
DELETE FROM nodes WHERE id = ?;

-- name: record_progress
UPDATE tasks SET progress = ?, progress_message = COALESCE(?, progress_message)
  WHERE id = ? AND status = 'running' RETURNING *;

-- name: record_progress_of_attempt
UPDATE tasks SET progress = ?, progress_message = COALESCE(?, progress_message)
  WHERE id = ? AND status = 'running' AND attempt = ? RETURNING *;

-- name: append_log
INSERT INTO task_logs (task_id, attempt, stream, line, ts) VALUES (?, ?, ?, ?, ?);

-- name: task_workflow
SELECT workflow_id FROM tasks WHERE id = ?;

-- The task's row, held for the rest of the transaction where a dialect can lock it.
-- name: lock_task
SELECT status, attempt FROM tasks WHERE id = ?;

-- name: end_attempt
UPDATE attempts SET status = ?, finished_at = ?, exit_code = ?, error = ?
  WHERE task_id = ? AND number = ? AND status = 'running';

-- name: retry_task
UPDATE tasks SET status = 'pending', run_after = ?, owner = NULL, lease_expires_at = NULL,
  error = ?, tries = tries - ? WHERE id = ? RETURNING *;

-- name: end_task
UPDATE tasks SET status = ?, completed_at = ?, owner = NULL, lease_expires_at = NULL, error = ?,
  result = COALESCE(?, result), progress = COALESCE(?, progress)
  WHERE id = ? RETURNING *;

-- name: workflow_has_pending
SELECT EXISTS (SELECT 1 FROM tasks WHERE workflow_id = ? AND status = 'pending') AS waiting;

-- name: cancel_unstarted
UPDATE tasks SET status = 'cancelled', completed_at = ?, error = 'cancelled before it started'
  WHERE id = ? AND status IN ('pending', 'blocked') RETURNING *;

-- name: flag_cancel
UPDATE tasks SET cancel_requested = TRUE WHERE id = ? AND status = 'running' RETURNING *;

-- name: running_with_attempts
SELECT t.*, a.task_id, a.number, a.node_id, a.status AS a_status, a.started_at AS a_started_at,
  a.finished_at, a.exit_code, a.error AS a_error, a.pid, a.pgid, a.start_ticks, a.boot_id
  FROM tasks t JOIN attempts a ON a.task_id = t.id AND a.number = t.attempt
  WHERE t.status = 'running' AND (? OR t.owner = ?) AND (? OR t.lease_expires_at < ?)
  ORDER BY t.seq;

-- Claiming. A list travels as one parameter: a JSON array here, an array on PostgreSQL
-- (the store's _array); postgres.sql overrides the queries that take one.
-- name: running_per_workflow
SELECT t.workflow_id, w.parallel_limit - COUNT(*) AS free FROM tasks t
  JOIN workflows w ON w.id = t.workflow_id WHERE t.status = 'running' GROUP BY t.workflow_id;

-- Ready tasks outside the full workflows (2nd) and those picked already (3rd).
-- name: ready_candidates
SELECT seq, workflow_id FROM tasks WHERE status = 'pending' AND run_after <= ?
  AND (workflow_id IS NULL OR workflow_id NOT IN (SELECT value FROM json_each(?)))
  AND seq NOT IN (SELECT value FROM json_each(?))
  ORDER BY priority DESC, seq LIMIT ?;

-- name: parallel_limits
SELECT id, parallel_limit FROM workflows WHERE id IN (SELECT value FROM json_each(?));

-- name: claim_tasks
UPDATE tasks SET status = 'running', attempt = attempt + 1, tries = tries + 1, owner = ?,
  lease_expires_at = ?, started_at = COALESCE(started_at, ?), progress = 0,
  progress_message = NULL WHERE seq IN (SELECT value FROM json_each(?)) RETURNING *;

-- name: insert_attempt
INSERT INTO attempts (task_id, number, node_id, status, started_at) VALUES (?, ?, ?, 'running', ?);

-- name: start_workflows
UPDATE workflows SET status = 'running', started_at = ?
  WHERE id IN (SELECT value FROM json_each(?)) AND status = 'queued';

-- The schema's version (a dialect may keep more about each migration).
-- name: schema_version_table
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);

-- name: record_version
INSERT INTO schema_version (version) VALUES (?);
