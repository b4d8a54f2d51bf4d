-- Retention (storage.retention_days) for the SQL stores: finished tasks with their
-- attempts and logs, and finished workflows with everything of theirs, once older than
-- the cut-off (every ? is the cut-off). Run in this order: tasks before their workflows.

-- The workflows that finished before the cut-off.
-- name: _old_workflows
SELECT id FROM workflows
  WHERE status IN ('completed', 'failed', 'cancelled', 'rolled_back', 'rollback_failed')
    AND completed_at < ?;

-- The tasks of no workflow that finished before the cut-off, and those of old workflows.
-- name: _old_tasks
SELECT id FROM tasks
  WHERE (workflow_id IS NULL AND status IN ('completed', 'failed', 'cancelled', 'timed_out', 'skipped')
         AND completed_at < ?)
     OR workflow_id IN ({_old_workflows});

-- name: purge_task_logs
DELETE FROM task_logs WHERE task_id IN ({_old_tasks});

-- name: purge_attempts
DELETE FROM attempts WHERE task_id IN ({_old_tasks});

-- name: purge_tasks
DELETE FROM tasks WHERE id IN ({_old_tasks});

-- name: purge_workflow_edges
DELETE FROM workflow_edges WHERE workflow_id IN ({_old_workflows});

-- name: purge_workflow_steps
DELETE FROM workflow_steps WHERE workflow_id IN ({_old_workflows});

-- name: purge_workflow_specs
DELETE FROM workflow_specs WHERE workflow_id IN ({_old_workflows});

-- name: purge_workflows
DELETE FROM workflows WHERE id IN ({_old_workflows});
