"""Crashes and stops of the real daemon: kill -9, SIGTERM, the pid file lock."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
from pathlib import Path
from typing import Any

import httpx

from provisioning.execution.supervisor import child
from tests.acceptance.conftest import BIN, Daemon, pid_alive
from tests.conftest import wait_for


def _gated_task(root: Path) -> list[str]:
    """Hold a lock (an overlapping run would find it taken), start a grandchild, print
    a line, wait for the gate, print another and exit 0."""
    script = f"""
        exec 9>"{root}/lock"
        if ! flock -n 9; then echo overlap >> "{root}/overlap"; exit 1; fi
        echo $$ >> "{root}/starts"
        sleep 300 &
        echo $! > "{root}/grandchild"
        echo before the crash
        while [ ! -e "{root}/gate" ]; do sleep 0.02; done
        echo after the crash
        echo 'RESULT: {{"done": true}}'
    """
    return ["sh", "-c", script]


def _attempt_dirs(daemon: Daemon) -> list[Path]:
    folder = daemon.data_dir / "attempts"
    return sorted(folder.iterdir()) if folder.is_dir() else []


def _log_lines(daemon: Daemon, task_id: str) -> list[str]:
    response = daemon.http.get(f"/tasks/{task_id}/logs")
    assert response.status_code == 200, response.text
    return [line["line"] for line in response.json()["lines"]]


def test_kill9_mid_run_the_task_goes_on_and_nothing_repeats(make_daemon) -> None:  # type: ignore[no-untyped-def]
    daemon: Daemon = make_daemon(max_concurrent_tasks=1).start()
    root = daemon.root
    quick = [
        daemon.submit({"command": ["sh", "-c", f'echo run >> "{root}/quick-{i}"']}, name=f"q{i}")
        for i in range(3)
    ]
    for task_id in quick:
        assert daemon.wait_status(task_id)["status"] == "completed"
    long = daemon.submit({"command": _gated_task(root)}, retry={"max_attempts": 1})
    daemon.wait_status(long, {"running"})
    wait_for((root / "grandchild").exists, message="grandchild started")
    wait_for(lambda: "before the crash" in _log_lines(daemon, long), message="first line stored")
    leader = int((root / "starts").read_text().split()[0])
    grandchild = int((root / "grandchild").read_text())
    queued = [
        daemon.submit({"command": ["sh", "-c", f'echo run >> "{root}/later-{i}"']})
        for i in range(2)
    ]

    daemon.kill9()
    assert pid_alive(leader)
    assert pid_alive(grandchild)

    daemon.start()
    # Re-adopted, not killed: the same attempt, the same processes.
    task = daemon.task(long)
    assert task["status"] == "running"
    assert [a["status"] for a in task["attempts"]] == ["running"]
    assert pid_alive(leader)
    assert pid_alive(grandchild)
    (root / "gate").touch()
    for task_id in [*quick, long, *queued]:
        assert daemon.wait_status(task_id)["status"] == "completed"
    _ran_once_to_its_end(daemon, daemon.task(long))
    # The tree ended with it; nothing overlapped.
    wait_for(lambda: not pid_alive(grandchild), message="grandchild ended with its task")
    assert not (root / "overlap").exists()
    for i in range(3):
        assert (root / f"quick-{i}").read_text() == "run\n"
    for i in range(2):
        assert (root / f"later-{i}").read_text() == "run\n"
    wait_for(lambda: not _attempt_dirs(daemon), message="attempt folders forgotten")


def _ran_once_to_its_end(daemon: Daemon, task: dict[str, Any]) -> None:
    """A gated task that lived through a crash: completed in its first attempt, its
    output before and after the crash stored once each, started once."""
    assert task["status"] == "completed"
    assert [a["status"] for a in task["attempts"]] == ["completed"]
    assert task["result"] == {"done": True}
    lines = _log_lines(daemon, task["id"])
    assert (lines.count("before the crash"), lines.count("after the crash")) == (1, 1)
    assert len((daemon.root / "starts").read_text().split()) == 1


def test_a_task_that_ends_while_the_daemon_is_down_is_recorded_not_rerun(make_daemon) -> None:  # type: ignore[no-untyped-def]
    daemon: Daemon = make_daemon().start()
    root = daemon.root
    task_id = daemon.submit({"command": _gated_task(root)}, retry={"max_attempts": 3})
    wait_for(lambda: "before the crash" in _log_lines(daemon, task_id), message="first line")
    grandchild = int((root / "grandchild").read_text())

    daemon.kill9()
    (root / "gate").touch()
    # Its supervisor saw it end, ended its tree and saved its status, with nobody there.
    [folder] = _attempt_dirs(daemon)
    wait_for((folder / "status.json").exists, message="status saved")
    wait_for(lambda: not pid_alive(grandchild), message="the task's tree ended")
    assert oct((folder / "status.json").stat().st_mode & 0o777) == "0o600"
    assert oct(folder.stat().st_mode & 0o777) == "0o700"

    daemon.start()
    _ran_once_to_its_end(daemon, daemon.wait_status(task_id))
    wait_for(lambda: not _attempt_dirs(daemon), message="attempt folder forgotten")


def test_a_crash_that_takes_the_supervisor_too_uses_up_no_try(make_daemon) -> None:  # type: ignore[no-untyped-def]
    daemon: Daemon = make_daemon().start()
    root = daemon.root
    script = (
        f'echo $$ >> "{root}/starts"; [ -e "{root}/ran" ] && exit 0; touch "{root}/ran"; sleep 300'
    )
    task_id = daemon.submit({"command": ["sh", "-c", script]}, retry={"max_attempts": 1})
    wait_for((root / "ran").exists, message="first run started")
    leader = int((root / "starts").read_text().split()[0])
    [folder] = _attempt_dirs(daemon)
    supervisor = json.loads((folder / "supervisor.json").read_text())["pid"]

    # As if the machine lost both: no supervisor is left to re-adopt, no status saved.
    daemon.kill9()
    os.kill(supervisor, signal.SIGKILL)
    wait_for(lambda: not pid_alive(supervisor), message="supervisor gone")
    daemon.start()
    task = daemon.wait_status(task_id)
    # What was left of it was killed before it ran again; the crash cost no try.
    assert not pid_alive(leader)
    assert task["status"] == "completed"
    assert [a["status"] for a in task["attempts"]] == ["lost", "completed"]
    assert "orchestrator stopped" in task["attempts"][0]["error"]
    # sh and its sleep, or sh alone when it had not forked yet, and the spawn helper
    # waiting for sh where there is one: the count is of what was alive (the supervisor
    # was not, nor were the processes of the quick run).
    killed = re.search(r"killed what was left of it \((\d+) process", task["attempts"][0]["error"])
    assert killed is not None
    helper = 1 if child.helper() is not None else 0
    assert int(killed.group(1)) in (1 + helper, 2 + helper)


def test_sigterm_awaits_short_tasks_and_hands_back_long_ones(make_daemon) -> None:  # type: ignore[no-untyped-def]
    daemon: Daemon = make_daemon(shutdown_grace_seconds=1.5).start()
    root = daemon.root
    short = daemon.submit({"command": ["sh", "-c", f'sleep 0.5; echo done >> "{root}/short"']})
    gate = root / "gate"
    long = daemon.submit(
        {
            "command": [
                "sh",
                "-c",
                f'echo start >> "{root}/long"; while [ ! -e "{gate}" ]; do sleep 0.02; done',
            ]
        }
    )
    daemon.wait_status(short, {"running"})
    daemon.wait_status(long, {"running"})
    assert daemon.stop(signal.SIGTERM) == 0
    assert "handing 1 task(s) back" in daemon.log()

    gate.touch()
    daemon.start()
    assert daemon.wait_status(short)["status"] == "completed"
    assert (root / "short").read_text() == "done\n"
    task = daemon.wait_status(long)
    assert task["status"] == "completed"
    assert [a["status"] for a in task["attempts"]] == ["interrupted", "completed"]
    # An interrupted attempt is not the task's fault: it does not use up a try.
    assert task["retry"]["max_attempts"] == 3


def _cli(daemon: Daemon, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "provisioning-orchestrator"), "--config", str(daemon.config), *args],
        env=daemon.env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_daemon_mode_pid_file_and_single_instance(make_daemon) -> None:  # type: ignore[no-untyped-def]
    daemon: Daemon = make_daemon()
    started = _cli(daemon, "--daemon")
    assert started.returncode == 0, started.stderr
    pid = int((daemon.data_dir / "orchestrator.pid").read_text())
    assert f"pid {pid}" in started.stdout
    try:
        assert httpx.get(daemon.url + "/health").json()["status"] == "healthy"
        again = _cli(daemon, "--daemon")
        assert again.returncode == 1
        assert "already running" in again.stderr
        foreground = _cli(daemon, "--port", "1")
        assert foreground.returncode == 1
        assert f"another orchestrator (pid {pid})" in foreground.stderr
        assert "Traceback" not in foreground.stderr
    finally:
        os.kill(pid, signal.SIGTERM)
    wait_for(lambda: not pid_alive(pid), message="daemon stopped")
    assert not (daemon.data_dir / "orchestrator.pid").exists()


def test_port_in_use_and_bad_config_are_clear_errors(make_daemon) -> None:  # type: ignore[no-untyped-def]
    first: Daemon = make_daemon().start()
    second: Daemon = make_daemon()
    busy = _cli(second, "--port", str(first.port))
    assert busy.returncode == 1
    assert f"cannot listen on 127.0.0.1:{first.port}" in busy.stderr
    assert "Traceback" not in busy.stderr
    text = second.config.read_text() + 'lease_seconds = "soon"\n'
    second.config.write_text(text)
    bad = _cli(second)
    assert bad.returncode == 2
    line = len(text.splitlines())
    assert f"{second.config}:{line}: key executor.lease_seconds" in bad.stderr
    assert "valid number" in bad.stderr
    assert "Traceback" not in bad.stderr
