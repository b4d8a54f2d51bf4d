"""Execution through the real daemon: priorities, Nushell tasks, timeouts, cancel,
retries, and hostile parameters that must stay data."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

from tests.acceptance.conftest import Daemon, pid_alive
from tests.conftest import wait_for


def _gate(path: Path) -> list[str]:
    """A command that waits (bounded) until ``path`` exists."""
    return [
        "sh",
        "-c",
        f'i=0; while [ ! -e "{path}" ] && [ $i -lt 3000 ]; do sleep 0.01; i=$((i+1)); done',
    ]


def test_priority_order_with_one_slot(make_daemon) -> None:  # type: ignore[no-untyped-def]
    daemon = make_daemon(max_concurrent_tasks=1).start()
    gate = daemon.root / "open"
    order = daemon.root / "order.txt"
    blocker = daemon.submit({"command": _gate(gate)}, name="blocker")
    daemon.wait_status(blocker, {"running"})
    submitted = [
        ("low", "low-1"),
        ("normal", "normal-1"),
        ("critical", "critical-1"),
        ("high", "high-1"),
        ("low", "low-2"),
        ("critical", "critical-2"),
        ("normal", "normal-2"),
        ("high", "high-2"),
    ]
    ids = [
        daemon.submit(
            {"command": ["sh", "-c", f'echo {name} >> "{order}"']}, name=name, priority=priority
        )
        for priority, name in submitted
    ]
    gate.touch()
    for task_id in ids:
        assert daemon.wait_status(task_id)["status"] == "completed"
    assert order.read_text().split() == [
        "critical-1",
        "critical-2",
        "high-1",
        "high-2",
        "normal-1",
        "normal-2",
        "low-1",
        "low-2",
    ]


def test_concurrency_limit_is_respected(make_daemon) -> None:  # type: ignore[no-untyped-def]
    daemon = make_daemon(max_concurrent_tasks=3).start()
    log = daemon.root / "spans.txt"
    script = (
        f'echo "start $(date +%s.%N)" >> "{log}"; sleep 0.2; echo "end $(date +%s.%N)" >> "{log}"'
    )
    ids = [daemon.submit({"command": ["sh", "-c", script]}) for _ in range(9)]
    for task_id in ids:
        daemon.wait_status(task_id)
    events = sorted(
        (float(ts), 1 if kind == "start" else -1)
        for kind, ts in (line.split() for line in log.read_text().splitlines())
    )
    running = peak = 0
    for _, delta in events:
        running += delta
        peak = max(peak, running)
    assert peak == 3


def test_nushell_task_reports_progress_over_http_and_returns_a_result(daemon: Daemon) -> None:
    gate = daemon.root / "release"
    daemon.write_nu(
        "servers/create.nu",
        """
        # Pattern 3 of the seed: the handler reports progress to the orchestrator itself.
        export def create-server [params: record] {
            let url = $"($env.PROVISIONING_ORCHESTRATOR_URL)/tasks/($env.PROVISIONING_TASK_ID)/progress"
            let auth = [Authorization $"Bearer ($env.PROVISIONING_TASK_TOKEN)"]
            http post --content-type application/json -H $auth $url {progress: 42, message: "via api"} | ignore
            mut waited = 0
            while (not ($params.gate | path exists)) and $waited < 3000 {
                sleep 10ms
                $waited += 1
            }
            print "PROGRESS: 90 almost"
            print $"RESULT: ({hostname: $params.hostname, cores: 2} | to json -r)"
        }
        """,
    )
    task_id = daemon.submit(
        {"nushell": {"module": "servers/create.nu", "function": "create-server"}},
        params={"hostname": "wuji-1", "gate": str(gate)},
    )
    running = wait_for(
        lambda: (t := daemon.task(task_id))["progress"] == 42 and t,
        message="progress 42 reported over HTTP",
    )
    assert running["status"] == "running"
    assert running["progress_message"] == "via api"
    gate.touch()
    task = daemon.wait_status(task_id)
    assert task["status"] == "completed", task
    assert task["result"] == {"hostname": "wuji-1", "cores": 2}


def test_task_token_only_reports_on_its_own_task(daemon: Daemon) -> None:
    gate = daemon.root / "open"
    first = daemon.submit({"command": _gate(gate)})
    second = daemon.submit({"command": _gate(gate)})
    daemon.wait_status(first, {"running"})
    daemon.wait_status(second, {"running"})
    script = (
        "import hashlib, hmac, sys; "
        "print(hmac.new(sys.argv[1].encode(), sys.argv[2].encode(), hashlib.sha256).hexdigest())"
    )
    import subprocess
    import sys

    first_token = subprocess.run(
        [sys.executable, "-c", script, daemon.token, first],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    import httpx

    own = httpx.post(
        f"{daemon.url}/tasks/{first}/progress",
        json={"progress": 5},
        headers={"Authorization": f"Bearer {first_token}"},
    )
    other = httpx.post(
        f"{daemon.url}/tasks/{second}/progress",
        json={"progress": 5},
        headers={"Authorization": f"Bearer {first_token}"},
    )
    listing = httpx.get(f"{daemon.url}/tasks", headers={"Authorization": f"Bearer {first_token}"})
    gate.touch()
    assert own.status_code == 200
    assert other.status_code == 401
    assert listing.status_code == 401


def test_timeout_kills_the_whole_process_group(daemon: Daemon) -> None:
    pidfile = daemon.root / "grandchild.pid"
    task_id = daemon.submit(
        {"command": ["sh", "-c", f'sleep 300 & echo $! > "{pidfile}"; wait']},
        timeout_seconds=1,
        retry={"max_attempts": 1},
    )
    task = daemon.wait_status(task_id)
    assert task["status"] == "timed_out"
    assert "timed out after 1 s" in task["error"]
    grandchild = int(pidfile.read_text())
    wait_for(lambda: not pid_alive(grandchild), timeout=5, message="grandchild gone")


def test_cancel_running_and_pending_tasks(make_daemon) -> None:  # type: ignore[no-untyped-def]
    daemon = make_daemon(max_concurrent_tasks=1).start()
    pidfile = daemon.root / "grandchild.pid"
    running = daemon.submit({"command": ["sh", "-c", f'sleep 300 & echo $! > "{pidfile}"; wait']})
    pending = daemon.submit({"command": ["true"]})
    daemon.wait_status(running, {"running"})
    wait_for(pidfile.exists, message="grandchild started")
    cancelled = daemon.http.post(f"/tasks/{pending}/cancel").json()
    assert cancelled["status"] == "cancelled"
    assert daemon.http.post(f"/tasks/{running}/cancel").status_code == 200
    task = daemon.wait_status(running)
    assert task["status"] == "cancelled"
    assert task["attempts"][-1]["status"] == "cancelled"
    wait_for(lambda: not pid_alive(int(pidfile.read_text())), timeout=5, message="grandchild gone")
    assert daemon.task(pending)["attempts"] == []
    # Cancelling what has ended changes nothing.
    assert daemon.http.post(f"/tasks/{running}/cancel").json()["status"] == "cancelled"


def test_retry_with_backoff_until_success(daemon: Daemon) -> None:
    counter = daemon.root / "count"
    script = f'n=$(cat "{counter}" 2>/dev/null || echo 0); n=$((n+1)); echo $n > "{counter}"; [ $n -ge 3 ]'
    task_id = daemon.submit(
        {"command": ["sh", "-c", script]},
        retry={"max_attempts": 3, "backoff": "linear", "initial_delay": 0.3, "max_delay": 5},
    )
    task = daemon.wait_status(task_id)
    assert task["status"] == "completed"
    attempts = task["attempts"]
    assert [a["status"] for a in attempts] == ["failed", "failed", "completed"]
    assert [a["exit_code"] for a in attempts] == [1, 1, 0]
    times = [
        (datetime.fromisoformat(a["started_at"]), datetime.fromisoformat(a["finished_at"]))
        for a in attempts
    ]
    # Linear backoff: 0.3 s before the 2nd attempt, 0.6 s before the 3rd.
    assert (times[1][0] - times[0][1]).total_seconds() >= 0.3
    assert (times[2][0] - times[1][1]).total_seconds() >= 0.6


def test_retries_stop_at_max_attempts(daemon: Daemon) -> None:
    task_id = daemon.submit({"command": ["false"]}, retry={"max_attempts": 2, "initial_delay": 0})
    task = daemon.wait_status(task_id)
    assert task["status"] == "failed"
    assert len(task["attempts"]) == 2


HOSTILE = {
    "quote": 'it\'s "quoted"',
    "semicolon": "a; touch {marker}",
    "subshell": "$(touch {marker})",
    "backticks": "`touch {marker}`",
    "nu_subexpression": "(touch {marker})",
    "nu_interpolation": '$"(touch {marker})"',
    "newline": "x\nprint pwned; touch {marker}",
    "braces": "{{}} }} ] ) ; ^touch {marker}",
}


def test_hostile_params_stay_data_in_nushell_tasks(daemon: Daemon) -> None:
    marker = daemon.root / "pwned"
    params = {key: value.format(marker=marker) for key, value in HOSTILE.items()}
    daemon.write_nu(
        "echo.nu",
        """
        export def echo-params [params: record] {
            print $"RESULT: ($params | to json -r)"
        }
        """,
    )
    task_id = daemon.submit(
        {"nushell": {"module": "echo.nu", "function": "echo-params"}},
        params=params,
        name="hostile $(touch x); `y`",
    )
    task = daemon.wait_status(task_id)
    assert task["status"] == "completed", task
    assert task["result"] == params
    assert not marker.exists()


def test_hostile_params_stay_data_in_command_and_python_tasks(daemon: Daemon) -> None:
    marker = daemon.root / "pwned"
    params = {key: value.format(marker=marker) for key, value in HOSTILE.items()}
    command = daemon.submit(
        {"command": ["sh", "-c", 'printf "RESULT: %s\\n" "$PROVISIONING_PARAMS"']}, params=params
    )
    module = daemon.write_py("echo_params", "def run(params):\n    return params\n")
    python = daemon.submit({"python": {"module": module, "function": "run"}}, params=params)
    for task_id in (command, python):
        task = daemon.wait_status(task_id)
        assert task["status"] == "completed", task
        assert task["result"] == params
    assert json.loads(json.dumps(params)) == params
    assert not marker.exists()
