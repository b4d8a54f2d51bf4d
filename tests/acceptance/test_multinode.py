"""Several orchestrator nodes on one PostgreSQL database: one queue, leases,
failover after kill -9, every outcome written once."""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from tests.acceptance.conftest import Daemon, pid_alive
from tests.acceptance.workflow_helpers import item_layers, submit, wait_workflow, workflow
from tests.conftest import wait_for
from tests.integration.pg_server import (  # noqa: F401 - fixtures
    _stop_postgres_at_the_end,
    pg_dsn,
    pg_server,
)

LEASE_SECONDS = 2.0


class Node(Daemon):
    """A daemon on the shared store, with the cluster's shared API token."""

    def __init__(self, root: Path, dsn: str, token_file: Path, **executor: Any) -> None:
        super().__init__(root, **executor)
        text = self.config.read_text()
        text = text.replace("[server]\n", f'[server]\ntoken_file = "{token_file}"\n', 1)
        text = text.replace("[storage]\n", f'[storage]\nbackend = "postgres"\ndsn = "{dsn}"\n', 1)
        self.config.write_text(text)
        self.token_file = token_file

    @property
    def token(self) -> str:
        return self.token_file.read_text().strip()


def _epoch(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


def test_three_nodes_one_killed_midway(tmp_path: Path, pg_dsn) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    dsn = pg_dsn()
    token_file = tmp_path / "cluster-token"
    runs = tmp_path / "runs"
    runs.mkdir()
    nodes = []
    for index in range(3):
        root = tmp_path / f"node{index}"
        root.mkdir()
        nodes.append(
            Node(root, dsn, token_file, max_concurrent_tasks=4, lease_seconds=LEASE_SECONDS)
        )
    try:
        for node in nodes:
            node.start()
        ids = {node.http.get("/health").json()["node_id"]: node for node in nodes}
        status = nodes[0].http.get("/status").json()
        assert {n["id"] for n in status["nodes"]} == set(ids)

        script = f'echo "$$" >> "{runs}/$PROVISIONING_TASK_ID"; sleep 0.2'
        body = workflow(
            "three-hundred",
            *item_layers(3, 100, ["sh", "-c", script]),
            parallel_limit=12,
            retry={"max_attempts": 3, "initial_delay": 0},
        )
        workflow_id = submit(nodes[0], body)

        victim = nodes[1]
        victim_id = victim.http.get("/health").json()["node_id"]

        def completed() -> int:
            return int(nodes[0].http.get(f"/workflows/{workflow_id}").json()["tasks"]["completed"])

        wait_for(lambda: completed() >= 60, timeout=60, message="60 tasks completed")
        victim.kill9()
        killed_at = datetime.now().timestamp()

        final = wait_workflow(nodes[0], workflow_id, timeout=120)
        assert final["status"] == "completed", final["error"]
        tasks = [t for step in final["steps"] for t in step["tasks"]]
        assert len(tasks) == 300

        lost_then_retried = 0
        completed_on_victim = 0
        for summary in tasks:
            task = nodes[0].http.get(f"/tasks/{summary['id']}").json()
            attempts = task["attempts"]
            done = [a for a in attempts if a["status"] == "completed"]
            # Every task's outcome was written once.
            assert len(done) == 1, attempts
            assert attempts[-1]["status"] == "completed"
            executions = (runs / task["id"]).read_text().split()
            if done[0]["node_id"] == victim_id:
                # Completed on the node before it died: never run again.
                completed_on_victim += 1
                assert len(executions) == 1, (task["id"], attempts)
            lost = [a for a in attempts if a["status"] == "lost"]
            if lost:
                assert all(a["node_id"] == victim_id for a in lost)
                retry = attempts[attempts.index(lost[-1]) + 1]
                assert retry["node_id"] != victim_id
                # Retried elsewhere only after its node died and the lease ran out.
                assert _epoch(retry["started_at"]) > killed_at
                assert "lease" in lost[-1]["error"]
                lost_then_retried += 1
            else:
                assert len(executions) == 1, (task["id"], attempts)
        assert completed_on_victim > 0
        assert lost_then_retried > 0
        alive = {n["id"] for n in nodes[0].http.get("/status").json()["nodes"]}
        assert set(ids) - {victim_id} <= alive
    finally:
        for node in nodes:
            if node.proc is not None and node.proc.poll() is None:
                node.stop()


def test_a_late_answer_from_a_taken_over_attempt_is_refused(tmp_path: Path, pg_dsn) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    """Fencing through the API: progress for an attempt that is not running is a 409."""
    dsn = pg_dsn()
    token_file = tmp_path / "cluster-token"
    root = tmp_path / "node"
    root.mkdir()
    node = Node(root, dsn, token_file, lease_seconds=LEASE_SECONDS)
    try:
        node.start()
        task_id = node.submit({"command": ["true"]})
        node.wait_status(task_id)
        late = httpx.post(
            f"{node.url}/tasks/{task_id}/progress",
            json={"progress": 50},
            headers={"Authorization": f"Bearer {node.token}"},
        )
        assert late.status_code == 409
        assert node.task(task_id)["progress"] == 100
    finally:
        node.stop()


def test_migrate_store_copies_a_sqlite_data_dir_into_postgres(  # type: ignore[no-untyped-def]
    make_daemon,
    tmp_path: Path,
    pg_dsn,  # noqa: F811
) -> None:
    import subprocess

    from tests.acceptance.conftest import BIN

    source: Daemon = make_daemon().start()
    tasks = [source.submit({"command": ["sh", "-c", f"echo line-{i}"]}) for i in range(5)]
    failing = source.submit({"command": ["false"]}, retry={"max_attempts": 1})
    flow = source.http.post(
        "/workflows/batch/submit",
        json={
            "name": "copied",
            "operations": [
                {"id": "a", "run": {"command": ["true"]}},
                {"id": "b", "depends_on": ["a"], "run": {"command": ["true"]}},
            ],
        },
    ).json()["workflow_id"]
    for task_id in [*tasks, failing]:
        source.wait_status(task_id)
    wait_for(
        lambda: source.http.get(f"/workflows/{flow}").json()["status"] == "completed",
        message="workflow completed",
    )
    before = {t: source.task(t) for t in [*tasks, failing]}
    before_logs = source.http.get(f"/tasks/{tasks[0]}/logs").json()["lines"]
    source.stop()

    dsn = pg_dsn()
    migrated = subprocess.run(
        [
            str(BIN / "provisioning"),
            "--config",
            str(source.config),
            "orchestrator",
            "migrate-store",
            "--dsn",
            dsn,
        ],
        env=source.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert migrated.returncode == 0, migrated.stderr
    assert "tasks: 8 row(s)" in migrated.stdout

    root = tmp_path / "pg-node"
    root.mkdir()
    target = Node(root, dsn, tmp_path / "token")
    try:
        target.start()
        for task_id, task in before.items():
            after = target.task(task_id)
            for key in ("status", "result", "error", "name", "attempt", "created_at"):
                assert after[key] == task[key], key
            assert [a["status"] for a in after["attempts"]] == [
                a["status"] for a in task["attempts"]
            ]
        assert target.http.get(f"/tasks/{tasks[0]}/logs").json()["lines"] == before_logs
        copied = target.http.get(f"/workflows/{flow}?steps=true").json()
        assert copied["status"] == "completed"
        assert [s["id"] for s in copied["steps"]] == ["a", "b"]
        # Nothing completed runs again on the new store.
        assert target.http.get("/tasks", params={"status": "pending"}).json()["total"] == 0
    finally:
        target.stop()


def test_a_killed_nodes_supervisor_stops_its_task_before_the_lease_runs_out(
    tmp_path: Path,
    pg_dsn,  # type: ignore[no-untyped-def]  # noqa: F811
) -> None:
    dsn = pg_dsn()
    token_file = tmp_path / "cluster-token"
    marker, pid_file = tmp_path / "ran", tmp_path / "pid"
    nodes = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        nodes.append(Node(tmp_path / name, dsn, token_file, lease_seconds=LEASE_SECONDS))
    first, second = nodes
    try:
        first.start()
        script = (
            f'[ -e "{marker}" ] && exit 0; touch "{marker}"; echo $$ > "{pid_file}"; exec sleep 300'
        )
        task_id = first.submit(
            {"command": ["sh", "-c", script]}, retry={"max_attempts": 1, "initial_delay": 0}
        )
        wait_for(pid_file.exists, message="the task started")
        wait_for(lambda: pid_file.read_text().strip(), message="its pid written")
        pid = int(pid_file.read_text())

        first.kill9()
        killed_at = time.monotonic()
        # Nobody renews its node's lease: its supervisor stops it (SIGTERM at 0.75 x
        # lease), before any other node could take it over.
        wait_for(lambda: not pid_alive(pid), timeout=LEASE_SECONDS * 2, message="task stopped")
        assert time.monotonic() - killed_at < LEASE_SECONDS
        [folder] = list((first.data_dir / "attempts").iterdir())
        # Saved once the supervisor has reaped what it started (the spawn helper, where
        # there is one, after the handler): a moment after the handler is gone.
        wait_for((folder / "status.json").exists, message="status saved")
        assert json.loads((folder / "status.json").read_text())["reason"] == "fenced"

        second.start()
        task = second.wait_status(task_id, timeout=30)
        assert task["status"] == "completed"
        attempts = task["attempts"]
        assert [a["status"] for a in attempts] == ["lost", "completed"]
        assert "lease" in attempts[0]["error"]
    finally:
        for node in nodes:
            if node.proc is not None and node.proc.poll() is None:
                node.stop()
            node.stop_supervisors()
