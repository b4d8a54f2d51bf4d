-- Orchestrator nodes: who is alive (heartbeat), for status and lease takeover.
CREATE TABLE nodes (
    id             TEXT PRIMARY KEY,
    host           TEXT NOT NULL,
    pid            INTEGER NOT NULL,
    max_concurrent INTEGER NOT NULL,
    started_at     {real} NOT NULL,
    last_seen      {real} NOT NULL
);
