"""A database written by an earlier schema opens under this one with nothing lost:
version 3 kept a workflow's spec inside its row; version 4 moves it to
``workflow_specs`` (the row is rewritten by every finished task)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from provisioning.orchestrator.store import open_sqlite
from provisioning.orchestrator.store.sql_queries import sql_migrations

SPEC = {"name": "old", "operations": [{"id": "a", "run": {"command": ["true"]}}]}


def _database_at_version_3(path: Path) -> None:
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    for number, script in sql_migrations("sqlite")[:3]:
        db.executescript(script)
        db.execute("INSERT INTO schema_version (version) VALUES (?)", (number,))
    db.execute(
        "INSERT INTO workflows (id, name, version, spec, status, priority, parallel_limit,"
        " rollback_enabled, created_at) VALUES ('wf-1', 'old', '1.0', ?, 'completed', 1,"
        " 10, 1, 1000.0)",
        (json.dumps(SPEC),),
    )
    db.commit()
    db.close()


def test_a_version_3_database_keeps_its_workflow_specs(tmp_path: Path) -> None:
    path = tmp_path / "orchestrator.db"
    _database_at_version_3(path)
    store = open_sqlite(path)
    try:
        assert store.meta()["schema_version"] == 4
        assert store.workflow_spec("wf-1") == SPEC
        workflow = store.get_workflow("wf-1")
        assert workflow is not None and workflow.name == "old"
    finally:
        store.close()
    columns = [row[1] for row in sqlite3.connect(path).execute("PRAGMA table_info(workflows)")]
    assert "spec" not in columns
