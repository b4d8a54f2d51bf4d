-- Tasks, their attempts and their logs. Times are UNIX seconds (double precision),
-- as in the SQLite schema; JSON documents are kept as text, exactly as written.
CREATE TABLE tasks (
    seq              {seq},
    id               TEXT NOT NULL UNIQUE,
    workflow_id      TEXT,
    name             TEXT NOT NULL,
    run              TEXT NOT NULL,
    params           TEXT NOT NULL,
    priority         INTEGER NOT NULL,
    status           TEXT NOT NULL,
    retry            TEXT NOT NULL,
    timeout_seconds  {real} NOT NULL,
    progress         INTEGER NOT NULL DEFAULT 0,
    progress_message TEXT,
    result           TEXT,
    error            TEXT,
    attempt          INTEGER NOT NULL DEFAULT 0,
    tries            INTEGER NOT NULL DEFAULT 0,
    run_after        {real} NOT NULL DEFAULT 0,
    created_at       {real} NOT NULL,
    started_at       {real},
    completed_at     {real},
    owner            TEXT,
    lease_expires_at {real},
    cancel_requested {bool} NOT NULL DEFAULT {false}
);

-- The claim query: ready pending tasks, highest priority first, FIFO within one.
-- sqlite only: CREATE INDEX tasks_ready ON tasks (status, priority DESC, seq) WHERE status = 'pending';
-- postgres only: CREATE INDEX tasks_ready ON tasks (priority DESC, seq) WHERE status = 'pending';
CREATE INDEX tasks_running ON tasks (owner) WHERE status = 'running';
-- postgres only: CREATE INDEX tasks_lease ON tasks (lease_expires_at) WHERE status = 'running';
CREATE INDEX tasks_status ON tasks (status, seq);
CREATE INDEX tasks_workflow ON tasks (workflow_id) WHERE workflow_id IS NOT NULL;

CREATE TABLE attempts (
    task_id     TEXT NOT NULL REFERENCES tasks (id),
    number      INTEGER NOT NULL,
    node_id     TEXT NOT NULL,
    status      TEXT NOT NULL,
    started_at  {real} NOT NULL,
    finished_at {real},
    exit_code   INTEGER,
    error       TEXT,
    pid         INTEGER,
    pgid        INTEGER,
    start_ticks {bigint},
    boot_id     TEXT,
    PRIMARY KEY (task_id, number)
);

CREATE TABLE task_logs (
    seq     {seq},
    task_id TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    stream  TEXT NOT NULL,
    line    TEXT NOT NULL,
    ts      {real} NOT NULL
);
CREATE INDEX task_logs_task ON task_logs (task_id, seq);
