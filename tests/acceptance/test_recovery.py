"""Crashes and stops of the real daemon: kill -9, SIGTERM, the pid file lock."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import httpx

from tests.acceptance.conftest import BIN, Daemon, pid_alive
from tests.conftest import wait_for


def _long_task(root: Path) -> list[str]:
    """First attempt: hold a lock and hang with a grandchild. Later attempts: check the
    lock is free (no overlap with an earlier attempt) and finish."""
    script = f"""
        exec 9>"{root}/lock"
        if ! flock -n 9; then echo overlap >> "{root}/overlap"; exit 1; fi
        echo $$ >> "{root}/starts"
        if [ "$(wc -l < "{root}/starts")" -gt 1 ]; then exit 0; fi
        sleep 300 &
        echo $! > "{root}/grandchild"
        wait
    """
    return ["sh", "-c", script]


def test_kill9_mid_run_loses_nothing_and_repeats_nothing(make_daemon) -> None:  # type: ignore[no-untyped-def]
    daemon: Daemon = make_daemon(max_concurrent_tasks=1).start()
    root = daemon.root
    quick = [
        daemon.submit({"command": ["sh", "-c", f'echo run >> "{root}/quick-{i}"']}, name=f"q{i}")
        for i in range(3)
    ]
    for task_id in quick:
        assert daemon.wait_status(task_id)["status"] == "completed"
    long = daemon.submit(
        {"command": _long_task(root)}, retry={"max_attempts": 3, "initial_delay": 0}
    )
    daemon.wait_status(long, {"running"})
    wait_for((root / "grandchild").exists, message="grandchild started")
    leader = int((root / "starts").read_text().split()[0])
    grandchild = int((root / "grandchild").read_text())
    queued = [
        daemon.submit({"command": ["sh", "-c", f'echo run >> "{root}/later-{i}"']})
        for i in range(2)
    ]

    daemon.kill9()
    # The orphaned attempt lives on after its orchestrator died...
    assert pid_alive(leader)
    assert pid_alive(grandchild)

    daemon.start()
    for task_id in [*quick, long, *queued]:
        assert daemon.wait_status(task_id)["status"] == "completed"
    # ... and was dead before the task ran again: no two live executions overlapped.
    assert not pid_alive(leader)
    assert not pid_alive(grandchild)
    assert not (root / "overlap").exists()
    attempts = daemon.task(long)["attempts"]
    assert [a["status"] for a in attempts] == ["lost", "completed"]
    assert "orchestrator stopped" in attempts[0]["error"]
    # Completed tasks ran exactly once; queued ones once too.
    for i in range(3):
        assert (root / f"quick-{i}").read_text() == "run\n"
    for i in range(2):
        assert (root / f"later-{i}").read_text() == "run\n"
    assert daemon.task(quick[0])["attempts"][0]["status"] == "completed"


def test_kill9_with_no_retries_left_fails_the_task(make_daemon) -> None:  # type: ignore[no-untyped-def]
    daemon: Daemon = make_daemon().start()
    task_id = daemon.submit({"command": ["sleep", "300"]}, retry={"max_attempts": 1})
    daemon.wait_status(task_id, {"running"})
    daemon.kill9()
    daemon.start()
    task = daemon.wait_status(task_id)
    assert task["status"] == "failed"
    assert "orchestrator stopped" in task["error"]


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
