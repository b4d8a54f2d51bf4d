"""The REST API of a real daemon: auth, task shapes, logs, events, bad input."""

from __future__ import annotations

import json
import threading
from typing import Any

import httpx
import pytest

from tests.acceptance.conftest import Daemon


def test_health_needs_no_token_and_reports_versions(daemon: Daemon) -> None:
    body = httpx.get(daemon.url + "/health").json()
    assert body["status"] == "healthy"
    assert body["api_version"] == "v1"
    assert body["version"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/tasks"),
        ("POST", "/tasks"),
        ("GET", "/tasks/x"),
        ("GET", "/tasks/x/logs"),
        ("POST", "/tasks/x/cancel"),
        ("POST", "/tasks/x/progress"),
        ("GET", "/events"),
        ("GET", "/status"),
        ("GET", "/openapi.json"),
    ],
)
def test_every_endpoint_but_health_needs_the_token(daemon: Daemon, method: str, path: str) -> None:
    missing = httpx.request(method, daemon.url + path, json={})
    wrong = httpx.request(
        method, daemon.url + path, json={}, headers={"Authorization": "Bearer nope"}
    )
    assert missing.status_code == 401
    assert wrong.status_code == 401
    assert "token" in missing.json()["error"]


def test_openapi_document_lists_the_routes(daemon: Daemon) -> None:
    paths = daemon.http.get("/openapi.json").json()["paths"]
    for path in ("/health", "/tasks", "/tasks/{task_id}", "/tasks/{task_id}/progress"):
        assert path in paths


def test_token_file_is_private(daemon: Daemon) -> None:
    mode = (daemon.data_dir / "api-token").stat().st_mode & 0o777
    assert mode == 0o600


def test_command_task_result_logs_and_attempts(daemon: Daemon) -> None:
    script = (
        'echo "line one"; echo PROGRESS: 40 warming up; echo oops >&2; echo \'RESULT: {"n": 7}\''
    )
    task_id = daemon.submit({"command": ["sh", "-c", script]}, name="shape")
    task = daemon.wait_status(task_id)
    assert task["status"] == "completed"
    assert task["result"] == {"n": 7}
    assert task["progress"] == 100
    assert task["error"] is None
    assert task["priority"] == "normal"
    for key in ("created_at", "started_at", "completed_at"):
        assert task[key]
    [attempt] = task["attempts"]
    assert attempt["status"] == "completed"
    assert attempt["exit_code"] == 0
    logs = daemon.http.get(f"/tasks/{task_id}/logs").json()
    lines = [(line["stream"], line["line"]) for line in logs["lines"]]
    assert ("stdout", "line one") in lines
    assert ("stderr", "oops") in lines
    after = daemon.http.get(f"/tasks/{task_id}/logs", params={"after": logs["next_after"]}).json()
    assert after["lines"] == []


def test_failure_records_exit_code_and_stderr_tail(daemon: Daemon) -> None:
    task_id = daemon.submit(
        {"command": ["sh", "-c", "echo 'disk is full' >&2; exit 3"]},
        retry={"max_attempts": 1},
    )
    task = daemon.wait_status(task_id)
    assert task["status"] == "failed"
    assert "exit code 3" in task["error"]
    assert "disk is full" in task["error"]
    assert task["attempts"][0]["exit_code"] == 3


def test_python_task_gets_params_and_returns_result(daemon: Daemon) -> None:
    module = daemon.write_py(
        "pyhandler",
        """
        import os

        def handle(params):
            print("PROGRESS: 50 halfway", flush=True)
            return {"doubled": params["n"] * 2, "task": os.environ["PROVISIONING_TASK_ID"]}
        """,
    )
    task_id = daemon.submit({"python": {"module": module, "function": "handle"}}, params={"n": 21})
    task = daemon.wait_status(task_id)
    assert task["status"] == "completed", task
    assert task["result"] == {"doubled": 42, "task": task_id}


def test_list_filters_and_pages(daemon: Daemon) -> None:
    ids = [daemon.submit({"command": ["true"]}, name=f"t{i}") for i in range(5)]
    for task_id in ids:
        daemon.wait_status(task_id)
    page = daemon.http.get("/tasks", params={"status": "completed", "limit": 2, "offset": 1}).json()
    assert page["total"] == 5
    assert [t["name"] for t in page["tasks"]] == ["t3", "t2"]
    assert daemon.http.get("/tasks", params={"status": "failed"}).json()["total"] == 0


def test_event_stream_reports_task_lifecycle(daemon: Daemon) -> None:
    seen: list[dict[str, Any]] = []
    connected = threading.Event()
    finished = threading.Event()

    def listen() -> None:
        headers = {"Authorization": f"Bearer {daemon.token}"}
        with httpx.stream("GET", daemon.url + "/events", headers=headers, timeout=30) as stream:
            for line in stream.iter_lines():
                if line.startswith(": connected"):
                    connected.set()
                if line.startswith("data: "):
                    event = json.loads(line[6:])
                    seen.append(event)
                    if event["event"] == "finished":
                        finished.set()
                        return

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    assert connected.wait(10)
    task_id = daemon.submit({"command": ["sh", "-c", "echo PROGRESS: 30 going"]})
    assert finished.wait(20), seen
    names = [e["event"] for e in seen if e.get("task_id") == task_id]
    assert names[0] == "created"
    assert "started" in names
    assert "progress" in names
    assert names[-1] == "finished"
    assert seen[-1]["status"] == "completed"


MALFORMED: list[tuple[str, Any, str]] = [
    ("no runner", {"name": "x", "run": {}}, "exactly one runner"),
    (
        "two runners",
        {"name": "x", "run": {"command": ["true"], "python": {"module": "a", "function": "b"}}},
        "exactly one runner",
    ),
    ("unknown runner", {"name": "x", "run": {"bash": "rm -rf /"}}, "run.bash"),
    ("empty argv", {"name": "x", "run": {"command": []}}, "run.command"),
    ("argv not strings", {"name": "x", "run": {"command": "true"}}, "run.command"),
    (
        "module escapes",
        {"name": "x", "run": {"nushell": {"module": "../../etc/x.nu", "function": "f"}}},
        "run.nushell.module",
    ),
    (
        "absolute module",
        {"name": "x", "run": {"nushell": {"module": "/etc/passwd", "function": "f"}}},
        "run.nushell.module",
    ),
    (
        "function injection",
        {"name": "x", "run": {"nushell": {"module": "m.nu", "function": "f; rm -rf /"}}},
        "run.nushell.function",
    ),
    (
        "missing module",
        {"name": "x", "run": {"nushell": {"module": "nope.nu", "function": "f"}}},
        "no module",
    ),
    (
        "missing function",
        {"name": "x", "run": {"nushell": {"module": "m.nu", "function": "absent"}}},
        "exports no command",
    ),
    (
        "missing python module",
        {"name": "x", "run": {"python": {"module": "no_such_mod_xyz", "function": "f"}}},
        "no module",
    ),
    (
        "missing python function",
        {"name": "x", "run": {"python": {"module": "json", "function": "nope"}}},
        "defines no",
    ),
    ("bad priority", {"name": "x", "run": {"command": ["true"]}, "priority": "urgent"}, "priority"),
    (
        "bad timeout",
        {"name": "x", "run": {"command": ["true"]}, "timeout_seconds": -1},
        "timeout_seconds",
    ),
    (
        "bad retry",
        {"name": "x", "run": {"command": ["true"]}, "retry": {"max_attempts": 0}},
        "retry.max_attempts",
    ),
    ("params not object", {"name": "x", "run": {"command": ["true"]}, "params": [1]}, "params"),
    ("missing name", {"run": {"command": ["true"]}}, "name"),
    ("unknown field", {"name": "x", "run": {"command": ["true"]}, "colour": "red"}, "colour"),
]


@pytest.mark.parametrize(("case", "body", "expected"), MALFORMED, ids=[c[0] for c in MALFORMED])
def test_malformed_submissions_get_422_and_never_reach_the_queue(
    daemon: Daemon, case: str, body: Any, expected: str
) -> None:
    daemon.write_nu("m.nu", "export def f [p: record] { }\n")
    response = daemon.http.post("/tasks", json=body)
    assert response.status_code == 422, (case, response.text)
    assert expected in response.json()["error"], response.json()
    assert daemon.http.get("/tasks").json()["total"] == 0


def test_invalid_json_oversized_body_and_bad_queries(daemon: Daemon) -> None:
    broken = daemon.http.post(
        "/tasks", content=b'{"name": ', headers={"content-type": "application/json"}
    )
    assert broken.status_code == 422
    assert "JSON" in broken.json()["error"]
    huge = daemon.http.post(
        "/tasks", json={"name": "x", "run": {"command": ["true"]}, "params": {"a": "x" * 2_000_000}}
    )
    assert huge.status_code == 413
    big_params = daemon.http.post(
        "/tasks", json={"name": "x", "run": {"command": ["true"]}, "params": {"a": "x" * 100_000}}
    )
    assert big_params.status_code == 422
    assert "params" in big_params.json()["error"]
    assert daemon.http.get("/tasks", params={"limit": 0}).status_code == 422
    assert daemon.http.get("/tasks", params={"limit": 1001}).status_code == 422
    assert daemon.http.get("/tasks", params={"status": "sleeping"}).status_code == 422
    assert daemon.http.get("/tasks/nope").status_code == 404
    assert daemon.http.post("/tasks/nope/cancel").status_code == 404
    assert daemon.http.get("/tasks").json()["total"] == 0
