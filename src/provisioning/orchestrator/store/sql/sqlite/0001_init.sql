-- Tasks, their attempts and their logs. Times are UNIX seconds (REAL).
CREATE TABLE tasks (
    seq              INTEGER PRIMARY KEY AUTOINCREMENT,
    id               TEXT NOT NULL UNIQUE,
    workflow_id      TEXT,
    name             TEXT NOT NULL,
    run              TEXT NOT NULL,
    params           TEXT NOT NULL,
    priority         INTEGER NOT NULL,
    status           TEXT NOT NULL,
    retry            TEXT NOT NULL,
    timeout_seconds  REAL NOT NULL,
    progress         INTEGER NOT NULL DEFAULT 0,
    progress_message TEXT,
    result           TEXT,
    error            TEXT,
    attempt          INTEGER NOT NULL DEFAULT 0,
    tries            INTEGER NOT NULL DEFAULT 0,
    run_after        REAL NOT NULL DEFAULT 0,
    created_at       REAL NOT NULL,
    started_at       REAL,
    completed_at     REAL,
    owner            TEXT,
    lease_expires_at REAL,
    cancel_requested INTEGER NOT NULL DEFAULT 0
);

-- The claim query: ready pending tasks, highest priority first, FIFO within one.
CREATE INDEX tasks_ready ON tasks (status, priority DESC, seq) WHERE status = 'pending';
CREATE INDEX tasks_running ON tasks (owner) WHERE status = 'running';
CREATE INDEX tasks_status ON tasks (status, seq);
CREATE INDEX tasks_workflow ON tasks (workflow_id) WHERE workflow_id IS NOT NULL;

CREATE TABLE attempts (
    task_id     TEXT NOT NULL REFERENCES tasks (id),
    number      INTEGER NOT NULL,
    node_id     TEXT NOT NULL,
    status      TEXT NOT NULL,
    started_at  REAL NOT NULL,
    finished_at REAL,
    exit_code   INTEGER,
    error       TEXT,
    pid         INTEGER,
    pgid        INTEGER,
    start_ticks INTEGER,
    boot_id     TEXT,
    PRIMARY KEY (task_id, number)
);

CREATE TABLE task_logs (
    seq     INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    stream  TEXT NOT NULL,
    line    TEXT NOT NULL,
    ts      REAL NOT NULL
);
CREATE INDEX task_logs_task ON task_logs (task_id, seq);
