"""The original platform's REST surface, through the real daemon: /batch/*, /state/*,
/rollback/*, status filters in any case, the original task shape, and the WebSocket's
event kinds (batch, task, system; an unknown kind refused)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.acceptance.conftest import Daemon
from tests.conftest import wait_for

DONE = {"completed", "failed", "cancelled", "rolled_back", "rollback_failed"}


def append(path: Path, text: str) -> dict[str, Any]:
    """A runner that appends one line to ``path`` (argv, no shell)."""
    return {"command": ["python3", "-c", f"open({str(path)!r}, 'a').write({text + chr(10)!r})"]}


def original_batch(root: Path) -> dict[str, Any]:
    return {
        "batch_workflow": {
            "name": "original",
            "retry_policy": {"max_attempts": 1},
            "rollback_strategy": {
                "enabled": True,
                "checkpoint_interval": 30,
                "preserve_successful": False,
            },
            "operations": [
                {
                    "id": "first",
                    "run": append(root / "first.log", "first"),
                    "undo": append(root / "undo.log", "undo first"),
                },
                {
                    "id": "second",
                    "dependencies": [{"id": "first", "kind": "hard"}],
                    "run": {"command": ["true"]},
                    "items": [1, 2, 3],
                    "parallel": False,
                    "timeout": 60,
                },
            ],
        }
    }


def wait_done(
    http: httpx.Client, workflow_id: str, path: str = "/batch/operations"
) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        body = http.get(f"{path}/{workflow_id}").json()
        return body if body["status"] in DONE else None

    result: dict[str, Any] = wait_for(done, timeout=60, message=f"workflow {workflow_id} done")
    return result


def execute(http: httpx.Client, body: dict[str, Any]) -> str:
    response = http.post("/batch/execute", json=body)
    assert response.status_code == 201, response.text
    submitted = response.json()
    assert submitted["status"] == "queued"
    assert submitted["operation_id"] == submitted["workflow_id"]
    return str(submitted["operation_id"])


def test_batch_execute_runs_the_original_form(daemon: Daemon, tmp_path: Path) -> None:
    http = daemon.http
    workflow_id = execute(http, original_batch(tmp_path))

    final = wait_done(http, workflow_id)

    assert final["status"] == "completed", final
    steps = {s["id"]: s for s in final["steps"]}
    # parallel = false: the three items ran one after another, as three chained steps.
    assert [steps[i]["depends_on"] for i in ("second.1", "second.2", "second")] == [
        ["first"],
        ["second.1"],
        ["second.2"],
    ]
    assert final["tasks"]["total"] == 4
    listed = http.get("/batch/operations", params={"status": "Completed"}).json()
    assert [w["id"] for w in listed["workflows"]] == [workflow_id]
    assert http.get("/batch/operations", params={"status": "RUNNING"}).json()["total"] == 0
    assert http.get("/batch/operations/nope").status_code == 404


def test_batch_execute_refuses_what_it_would_change_by_name(daemon: Daemon) -> None:
    body = {
        "name": "w",
        "rollback_strategy": {"preserve_successful": True, "on_partial_failure": "rollback"},
        "operations": [
            {
                "id": "a",
                "run": {"command": ["true"]},
                "dependencies": [{"id": "a0", "kind": "soft"}],
            }
        ],
    }
    response = daemon.http.post("/batch/execute", json=body)
    assert response.status_code == 422
    wheres = [p["where"] for p in response.json()["problems"]]
    assert wheres == ["rollback_strategy.preserve_successful", "operations[0].dependencies[0].kind"]


def test_state_endpoints_follow_the_same_engine(daemon: Daemon, tmp_path: Path) -> None:
    http = daemon.http
    workflow_id = execute(http, original_batch(tmp_path))
    wait_done(http, workflow_id)

    progress = http.get(f"/state/workflows/{workflow_id}/progress").json()
    assert progress["progress"] == 100 and progress["status"] == "completed"
    assert progress["steps_completed"] == progress["steps_total"] == 4
    assert progress["current_steps"] == []

    snapshots = http.get(f"/state/workflows/{workflow_id}/snapshots").json()
    assert [s["step"] for s in snapshots] == ["first", "second.1", "second.2", "second"]
    assert [s["steps_completed"] for s in snapshots] == [1, 2, 3, 4]
    assert snapshots[-1]["completed_steps"] == ["first", "second.1", "second.2", "second"]

    metrics = http.get("/state/system/metrics").json()
    assert metrics["tasks"]["completed"] == 4
    assert metrics["max_concurrent_tasks"] == 4 and metrics["nodes"] == 1
    stats = http.get("/state/statistics").json()
    assert stats["workflows"]["completed"] == 1 and stats["workflows"]["total"] == 1
    assert stats["tasks"]["total"] == 4 and stats["success_rate"] == 1.0
    assert http.get("/state/workflows/nope/progress").status_code == 404


def test_rollback_endpoints_undo_and_restore_from_the_checkpoint(
    daemon: Daemon, tmp_path: Path
) -> None:
    http = daemon.http
    done_id = execute(http, original_batch(tmp_path))
    wait_done(http, done_id)
    checkpoints = http.get("/rollback/checkpoints").json()
    assert [(c["checkpoint_id"], c["steps_completed"]) for c in checkpoints] == [(done_id, 4)]

    rolled = http.post("/rollback/execute", json={"checkpoint_id": done_id})
    assert rolled.status_code == 200, rolled.text
    assert wait_done(http, done_id)["status"] == "rolled_back"
    assert (tmp_path / "undo.log").read_text() == "undo first\n"
    assert http.post("/rollback/execute", json={}).status_code == 422

    flag = tmp_path / "flag"
    failing = {
        "name": "restore",
        "operations": [
            {"id": "first", "run": append(tmp_path / "restore.log", "ran")},
            {
                "id": "gate",
                "depends_on": ["first"],
                "run": {"command": ["test", "-e", str(flag)]},
                "retry": {"max_attempts": 1},
            },
        ],
    }
    failed_id = execute(http, failing)
    assert wait_done(http, failed_id)["status"] == "failed"
    flag.touch()
    restored = http.post(f"/rollback/restore/{failed_id}")
    assert restored.status_code == 200, restored.text
    assert wait_done(http, failed_id)["status"] == "completed"
    # Resumed from the checkpoint: what had completed did not run again.
    assert (tmp_path / "restore.log").read_text() == "ran\n"
    assert http.post("/rollback/restore/nope").status_code == 404


def test_batch_cancel_stops_a_running_operation(daemon: Daemon) -> None:
    http = daemon.http
    workflow_id = execute(
        http, {"name": "slow", "operations": [{"id": "sleep", "run": {"command": ["sleep", "60"]}}]}
    )
    wait_for(
        lambda: http.get(f"/batch/operations/{workflow_id}").json()["status"] == "running",
        timeout=30,
    )
    cancelled = http.post(f"/batch/operations/{workflow_id}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    assert wait_done(http, workflow_id)["status"] == "cancelled"


def test_task_status_filters_in_any_case_and_the_original_task_shape(
    daemon: Daemon, tmp_path: Path
) -> None:
    http = daemon.http
    workflow_id = execute(http, original_batch(tmp_path))
    wait_done(http, workflow_id)
    lower = http.get("/tasks", params={"status": "completed"}).json()
    upper = http.get("/tasks", params={"status": "Completed"}).json()
    assert lower == upper and lower["total"] == 4 and lower["limit"] == 50
    refused = http.get("/tasks", params={"status": "Done"})
    assert refused.status_code == 422
    assert "status: unknown status 'Done'" in refused.json()["error"]
    for limit in (0, 1001):
        assert http.get("/tasks", params={"limit": limit}).status_code == 422
    assert len(http.get("/tasks", params={"limit": 1000}).json()["tasks"]) == 4

    original = http.get("/tasks", params={"shape": "original"}).json()["tasks"]
    assert set(original[0]) == {
        "id", "name", "command", "args", "dependencies", "status",
        "created_at", "started_at", "completed_at", "output", "error",
    }  # fmt: skip
    by_name = {t["name"]: t for t in original}
    first = by_name["original/first"]
    assert first["status"] == "Completed" and first["command"] == "python3"
    assert by_name["original/second.1"]["dependencies"] == [first["id"]]
    one = http.get(f"/tasks/{first['id']}", params={"shape": "original"}).json()
    assert one == first


def test_openapi_lists_the_original_paths(daemon: Daemon) -> None:
    paths = set(daemon.http.get("/openapi.json").json()["paths"])
    assert {
        "/batch/execute", "/batch/operations", "/batch/operations/{operation_id}",
        "/batch/operations/{operation_id}/cancel", "/state/workflows/{workflow_id}/progress",
        "/state/workflows/{workflow_id}/snapshots", "/state/system/metrics", "/state/statistics",
        "/rollback/checkpoints", "/rollback/execute", "/rollback/restore/{checkpoint_id}",
        "/workflows/servers/create", "/workflows/taskserv/create", "/workflows/cluster/create",
    } <= paths  # fmt: skip


def ws_url(daemon: Daemon, events: str) -> str:
    return f"ws://127.0.0.1:{daemon.port}/ws?events={events}"


def messages_until(socket: Any, wanted: str) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    while not any(m.get("type") == wanted for m in seen):
        seen.append(json.loads(socket.recv(timeout=30)))
    return seen


def test_websocket_batch_events_deliver_workflow_changes(daemon: Daemon, tmp_path: Path) -> None:
    headers = {"Authorization": f"Bearer {daemon.token}"}
    with connect(ws_url(daemon, "batch"), additional_headers=headers) as socket:
        workflow_id = execute(daemon.http, original_batch(tmp_path))
        seen = messages_until(socket, "workflow")
        assert {m["type"] for m in seen} == {"workflow"}
        assert seen[0]["event"] == "created"
    with connect(ws_url(daemon, "system,task"), additional_headers=headers) as socket:
        hello = json.loads(socket.recv(timeout=30))
        assert (hello["type"], hello["event"]) == ("system", "connected")
        daemon.submit({"command": ["true"]})
        assert {m["type"] for m in messages_until(socket, "task")} == {"task"}
    del workflow_id


def test_an_unknown_event_kind_is_refused(daemon: Daemon) -> None:
    headers = {"Authorization": f"Bearer {daemon.token}"}
    with connect(ws_url(daemon, "batch,bogus"), additional_headers=headers) as socket:
        error = json.loads(socket.recv(timeout=30))
        assert error == {
            "type": "error",
            "error": "events: unknown kind(s) bogus (known: batch, system, task, workflow)",
        }
        with pytest.raises(ConnectionClosed) as closed:
            socket.recv(timeout=30)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4400
    sse = daemon.http.get("/events", params={"events": "bogus"})
    assert sse.status_code == 422 and "unknown kind(s) bogus" in sse.json()["error"]


def test_storage_backend_must_be_the_orchestrators_own(daemon: Daemon) -> None:
    ops = [{"id": "a", "run": {"command": ["true"]}}]
    refused = daemon.http.post(
        "/batch/execute", json={"name": "w", "storage_backend": "surrealdb", "operations": ops}
    )
    assert refused.status_code == 422
    (problem,) = refused.json()["problems"]
    assert problem["where"] == "storage_backend"
    assert problem["message"].startswith("this orchestrator stores in sqlite, not surrealdb")
    accepted = daemon.http.post(
        "/batch/execute", json={"name": "w", "storage_backend": "filesystem", "operations": ops}
    )
    assert accepted.status_code == 201, accepted.text


def test_workflows_batch_submit_takes_the_wrapped_original_form(
    daemon: Daemon, tmp_path: Path
) -> None:
    submitted = daemon.http.post("/workflows/batch/submit", json=original_batch(tmp_path))
    assert submitted.status_code == 201, submitted.text
    assert (
        wait_done(daemon.http, submitted.json()["workflow_id"], "/workflows")["status"]
        == "completed"
    )
