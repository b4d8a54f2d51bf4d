-- PostgreSQL's overrides of the named queries in workflow.sql.

-- Several nodes end tasks of one workflow at once: every transaction that changes a
-- workflow's counters, steps or not-started tasks locks its row first.
-- name: lock_workflow
SELECT {wf} FROM workflows WHERE id = ? FOR UPDATE;
