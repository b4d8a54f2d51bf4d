"""Issue 14: a workflow written one operation per node is accepted at size, a status
poll costs counts only unless the steps are asked for, and a long poll returns once the
workflow (or task) has finished."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.acceptance.conftest import Daemon
from tests.acceptance.workflow_helpers import Cli, submit

WIDTH, LAYERS = 100, 20


def layered(layers: int, width: int, command: list[str]) -> dict[str, Any]:
    """One operation per node, each depending on every node of the previous layer."""
    ops: list[dict[str, Any]] = []
    for layer in range(layers):
        for j in range(width):
            op: dict[str, Any] = {"id": f"l{layer}_{j}", "run": {"command": command}}
            if layer:
                op["depends_on"] = [f"l{layer - 1}_{k}" for k in range(width)]
            ops.append(op)
    return {"name": "layered", "parallel_limit": 10, "operations": ops}


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    started = Daemon(tmp_path_factory.mktemp("scale"), max_concurrent_tasks=10).start()
    try:
        yield started
    finally:
        started.stop()


def test_a_workflow_of_2000_nodes_and_190000_edges_is_accepted_and_completes(
    daemon: Daemon,
) -> None:
    body = layered(LAYERS, WIDTH, ["true"])
    assert len(json.dumps(body)) > 1_048_576  # beyond the default limit of other bodies
    workflow_id = submit(daemon, body)
    reply = daemon.http.get(f"/workflows/{workflow_id}", params={"wait": 120}, timeout=130)
    assert reply.status_code == 200, reply.text
    found = reply.json()
    assert found["status"] == "completed", found
    assert found["tasks"] == {"total": 2000, "completed": 2000, "failed": 0, "open": 0}
    assert found["checkpoint"]["steps_completed"] == 2000


def test_a_status_poll_gives_counts_and_the_steps_only_when_asked(daemon: Daemon) -> None:
    workflow_id = submit(daemon, layered(2, 3, ["true"]))
    done = daemon.http.get(f"/workflows/{workflow_id}", params={"wait": 30}).json()
    assert done["status"] == "completed"
    assert done["steps"] is None
    assert done["tasks"]["completed"] == 6
    full = daemon.http.get(f"/workflows/{workflow_id}", params={"steps": "true"}).json()
    assert [s["id"] for s in full["steps"]] == ["l0_0", "l0_1", "l0_2", "l1_0", "l1_1", "l1_2"]
    assert all(len(s["tasks"]) == 1 for s in full["steps"])
    assert full["checkpoint"]["completed_steps"] == [s["id"] for s in full["steps"]]


def test_a_long_poll_returns_the_finished_workflow_and_task(daemon: Daemon) -> None:
    workflow_id = submit(daemon, layered(3, 1, ["sleep", "0.3"]))
    at_once = daemon.http.get(f"/workflows/{workflow_id}").json()
    assert at_once["status"] in ("queued", "running")
    held = daemon.http.get(f"/workflows/{workflow_id}", params={"wait": 60}, timeout=70).json()
    assert held["status"] == "completed"
    assert held["completed_at"] is not None
    task = daemon.http.post("/tasks", json={"name": "nap", "run": {"command": ["sleep", "0.3"]}})
    task_id = task.json()["task_id"]
    ended = daemon.http.get(f"/tasks/{task_id}", params={"wait": 60}, timeout=70).json()
    assert ended["status"] == "completed"


def test_a_long_poll_ends_after_its_seconds_when_nothing_finishes(daemon: Daemon) -> None:
    workflow_id = submit(daemon, layered(1, 1, ["sleep", "30"]))
    try:
        held = daemon.http.get(f"/workflows/{workflow_id}", params={"wait": 0.5}).json()
        assert held["status"] in ("queued", "running")
    finally:
        daemon.http.post(f"/workflows/{workflow_id}/cancel")


def test_a_workflow_over_its_limit_is_refused_naming_the_setting(tmp_path: Path) -> None:
    small = Daemon(tmp_path, sections={"server": {"max_workflow_bytes": 4096}}).start()
    try:
        reply = small.http.post("/workflows/batch/submit", json=layered(2, 20, ["true"]))
        assert reply.status_code == 413
        assert "server.max_workflow_bytes" in reply.json()["detail"]
        other = small.http.post("/tasks", content=b"x" * 2_000_000)
        assert other.status_code == 413
        assert "server.max_body_bytes" in other.json()["detail"]
    finally:
        small.stop()


def test_waiting_cli_returns_the_completed_workflow(daemon: Daemon, tmp_path: Path) -> None:
    path = tmp_path / "wf.json"
    path.write_text(json.dumps(layered(3, 2, ["true"])))
    done = Cli(daemon, tmp_path)("workflow", "submit", str(path), "--wait", "--json")
    assert done.code == 0, done
    final = json.loads(done.stdout)
    assert final["status"] == "completed"
    assert len(final["steps"]) == 6  # the full view, as before
