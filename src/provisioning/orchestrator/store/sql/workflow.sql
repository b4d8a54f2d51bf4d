-- The workflow queries of the SQL stores (SQLite and PostgreSQL), by name.
-- `?` marks a parameter (PostgreSQL's driver is given `%s`); `{wf}` stands for every
-- column of a workflow (its spec lives in workflow_specs). A dialect overrides a query by giving its name
-- again in its own file (postgres.sql).

-- name: insert_workflow
INSERT INTO workflows (id, name, version, status, priority, parallel_limit,
  rollback_enabled, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?);

-- name: insert_workflow_spec
INSERT INTO workflow_specs (workflow_id, spec) VALUES (?, ?);

-- name: insert_step
INSERT INTO workflow_steps (workflow_id, step_id, kind, position, layer, on_failure,
  status, waiting_on, total) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?);

-- name: insert_edge
INSERT INTO workflow_edges (workflow_id, step_id, dependent_id) VALUES (?, ?, ?);

-- name: set_task_totals
UPDATE workflows SET tasks_total = ?, tasks_open = ? WHERE id = ? RETURNING {wf};

-- name: workflow
SELECT {wf} FROM workflows WHERE id = ?;

-- The workflow's row, held for the rest of the transaction where a dialect can lock it.
-- name: lock_workflow
SELECT {wf} FROM workflows WHERE id = ?;

-- name: count_task
UPDATE workflows SET tasks_open = tasks_open - 1, tasks_completed = tasks_completed + ?,
  tasks_failed = tasks_failed + ? WHERE id = ?;

-- name: step_item_completed
UPDATE workflow_steps SET completed = completed + 1 WHERE workflow_id = ? AND step_id = ?
  RETURNING *;

-- name: step_item_failed
UPDATE workflow_steps SET failed = failed + 1, status = 'failed', finished_at = ?
  WHERE workflow_id = ? AND step_id = ? RETURNING *;

-- name: step_completed
UPDATE workflow_steps SET status = 'completed', finished_at = ? WHERE workflow_id = ? AND step_id = ?;

-- name: checkpoint
UPDATE workflows SET steps_completed = steps_completed + 1, checkpoint_at = ? WHERE id = ?;

-- name: release_dependents
UPDATE workflow_steps SET waiting_on = waiting_on - 1 WHERE workflow_id = ? AND step_id IN
  (SELECT dependent_id FROM workflow_edges WHERE workflow_id = ? AND step_id = ?)
  RETURNING step_id, waiting_on, status;

-- name: set_step_status
UPDATE workflow_steps SET status = ? WHERE workflow_id = ? AND step_id = ?;

-- name: start_step_tasks
UPDATE tasks SET status = 'pending', run_after = ?
  WHERE workflow_id = ? AND step_id = ? AND status = 'blocked';

-- name: set_error_once
UPDATE workflows SET error = ? WHERE id = ? AND error IS NULL;

-- name: set_failure_once
UPDATE workflows SET failure = ?, error = ? WHERE id = ? AND failure IS NULL;

-- name: dependents
SELECT dependent_id FROM workflow_edges WHERE workflow_id = ? AND step_id = ?;

-- name: dependencies
SELECT step_id FROM workflow_edges WHERE workflow_id = ? AND dependent_id = ?;

-- name: skip_step
UPDATE workflow_steps SET status = 'skipped', finished_at = NULL WHERE workflow_id = ? AND step_id = ?;

-- name: skip_step_tasks
UPDATE tasks SET status = 'skipped', error = ?
  WHERE workflow_id = ? AND step_id = ? AND status IN ('blocked', 'pending');

-- name: close_tasks
UPDATE tasks SET status = ?, error = ?, completed_at = NULL
  WHERE workflow_id = ? AND status IN ('blocked', 'pending');

-- name: close_steps
UPDATE workflow_steps SET status = ? WHERE workflow_id = ?
  AND status IN ('blocked', 'ready') AND completed = 0 AND failed = 0;

-- name: uncount_open
UPDATE workflows SET tasks_open = tasks_open - ? WHERE id = ?;

-- name: failed_steps
SELECT COUNT(*) AS n FROM workflow_steps WHERE workflow_id = ? AND kind = ?
  AND status IN ('failed', 'skipped', 'cancelled');

-- name: end_phase
UPDATE workflows SET status = ?, completed_at = ? WHERE id = ?;

-- name: mark_cancel
UPDATE workflows SET failure = 'cancel', error = 'cancelled' WHERE id = ?;

-- name: flag_running_cancel
UPDATE tasks SET cancel_requested = TRUE WHERE workflow_id = ? AND status = 'running'
  RETURNING id, seq;

-- name: reopen_tasks
UPDATE tasks SET status = 'blocked', error = NULL, tries = 0, progress = 0,
  cancel_requested = FALSE, completed_at = NULL, run_after = 0
  WHERE workflow_id = ? AND status != 'completed' AND step_id IN
  (SELECT step_id FROM workflow_steps WHERE workflow_id = ? AND kind = ?);

-- name: phase_steps
SELECT * FROM workflow_steps WHERE workflow_id = ? AND kind = ?;

-- name: reset_step
UPDATE workflow_steps SET status = ?, waiting_on = ?, failed = 0, finished_at = NULL
  WHERE workflow_id = ? AND step_id = ?;

-- name: resume_workflow
UPDATE workflows SET status = ?, failure = NULL, error = NULL, completed_at = NULL,
  tasks_open = ?, tasks_failed = 0 WHERE id = ? RETURNING {wf};

-- name: request_rollback
UPDATE workflows SET status = 'rollback_pending' WHERE id = ?
  AND status IN ('completed', 'failed', 'cancelled') AND phase = 'run' RETURNING {wf};

-- name: begin_undo
UPDATE workflows SET phase = 'undo', status = ?, failure = NULL, tasks_open = ?,
  tasks_total = tasks_total + ?, completed_at = NULL WHERE id = ? RETURNING {wf};
