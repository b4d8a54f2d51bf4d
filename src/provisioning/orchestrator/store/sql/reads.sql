-- The read verbs of the SQL stores (SQLite and PostgreSQL), by name; the conventions of
-- workflow.sql. A filter given as `(? OR status = ?)` takes (no filter?, the value).

-- name: task
SELECT * FROM tasks WHERE id = ?;

-- name: count_tasks
SELECT COUNT(*) AS n FROM tasks WHERE (? OR status = ?);

-- name: page_tasks
SELECT * FROM tasks WHERE (? OR status = ?) ORDER BY seq DESC LIMIT ? OFFSET ?;

-- name: workflow_tasks
SELECT * FROM tasks WHERE workflow_id = ? ORDER BY seq;

-- name: attempts
SELECT * FROM attempts WHERE task_id = ? ORDER BY number;

-- name: logs
SELECT * FROM task_logs WHERE task_id = ? AND seq > ? ORDER BY seq LIMIT ?;

-- name: counts
SELECT status, COUNT(*) AS n FROM tasks GROUP BY status;

-- name: pending_by_priority
SELECT priority, COUNT(*) AS n FROM tasks WHERE status = 'pending' GROUP BY priority;

-- name: next_ready_at
SELECT MIN(run_after) AS t FROM tasks WHERE status = 'pending';

-- name: nodes
SELECT n.*, (SELECT COUNT(*) FROM tasks t WHERE t.status = 'running' AND t.owner = n.id)
  AS running FROM nodes n ORDER BY n.started_at, n.id;

-- name: workflow_spec
SELECT spec FROM workflow_specs WHERE workflow_id = ?;

-- name: count_workflows
SELECT COUNT(*) AS n FROM workflows WHERE (? OR status = ?);

-- name: page_workflows
SELECT {wf} FROM workflows WHERE (? OR status = ?) ORDER BY seq DESC LIMIT ? OFFSET ?;

-- name: workflow_edges
SELECT step_id, dependent_id FROM workflow_edges WHERE workflow_id = ?;

-- name: workflow_steps
SELECT * FROM workflow_steps WHERE workflow_id = ? ORDER BY kind = 'undo', position;

-- name: workflows_in
SELECT {wf} FROM workflows WHERE status = ? ORDER BY seq;
