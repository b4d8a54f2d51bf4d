-- Workflows: a DAG of steps (operations), each fanning out into tasks.
CREATE TABLE workflows (
    seq              {seq},
    id               TEXT NOT NULL UNIQUE,
    name             TEXT NOT NULL,
    version          TEXT NOT NULL,
    spec             TEXT NOT NULL,
    status           TEXT NOT NULL,
    -- 'run' while the operations run, 'undo' while a rollback runs.
    phase            TEXT NOT NULL DEFAULT 'run',
    -- Why the workflow stopped starting new work: 'fail', 'rollback' or 'cancel'.
    failure          TEXT,
    error            TEXT,
    priority         INTEGER NOT NULL,
    parallel_limit   INTEGER NOT NULL,
    rollback_enabled {bool} NOT NULL,
    tasks_total      INTEGER NOT NULL DEFAULT 0,
    -- Tasks of the current phase not yet terminal; 0 ends the phase.
    tasks_open       INTEGER NOT NULL DEFAULT 0,
    tasks_completed  INTEGER NOT NULL DEFAULT 0,
    tasks_failed     INTEGER NOT NULL DEFAULT 0,
    steps_completed  INTEGER NOT NULL DEFAULT 0,
    checkpoint_at    {real},
    created_at       {real} NOT NULL,
    started_at       {real},
    completed_at     {real}
);
CREATE INDEX workflows_status ON workflows (status, seq);

CREATE TABLE workflow_steps (
    workflow_id TEXT NOT NULL REFERENCES workflows (id),
    step_id     TEXT NOT NULL,
    kind        TEXT NOT NULL,
    position    INTEGER NOT NULL,
    layer       INTEGER NOT NULL,
    on_failure  TEXT NOT NULL,
    status      TEXT NOT NULL,
    waiting_on  INTEGER NOT NULL,
    total       INTEGER NOT NULL,
    completed   INTEGER NOT NULL DEFAULT 0,
    failed      INTEGER NOT NULL DEFAULT 0,
    finished_at {real},
    PRIMARY KEY (workflow_id, step_id)
);

CREATE TABLE workflow_edges (
    workflow_id  TEXT NOT NULL,
    step_id      TEXT NOT NULL,
    dependent_id TEXT NOT NULL,
    PRIMARY KEY (workflow_id, step_id, dependent_id)
);

ALTER TABLE tasks ADD COLUMN step_id TEXT;
ALTER TABLE tasks ADD COLUMN item INTEGER;
CREATE INDEX tasks_workflow_step ON tasks (workflow_id, step_id, status) WHERE workflow_id IS NOT NULL;
-- Running tasks per workflow, counted under the workflow's lock to hold parallel_limit.
-- postgres only: CREATE INDEX tasks_workflow_running ON tasks (workflow_id) WHERE status = 'running' AND workflow_id IS NOT NULL;
