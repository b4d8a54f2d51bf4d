"""A task is its whole process tree (issue 15, point 3b): what a handler starts with
``setsid`` (and with an empty environment, so no marker finds it) ends with the task,
on cancel, timeout, normal exit, and after a kill -9 of the daemon and a restart."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.acceptance.conftest import Daemon, pid_alive
from tests.conftest import wait_for

CGROUP_ROOT = Path("/sys/fs/cgroup")


def _cgroup2() -> Path | None:
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        before, _, after = line.partition(" - ")
        if after.split(" ", 1)[0] == "cgroup2":
            return Path(before.split(" ")[4])
    return None


needs_cgroup2 = pytest.mark.skipif(
    _cgroup2() is None, reason="no cgroup v2 hierarchy on this machine"
)


def escaper(pid_file: Path, then: str) -> dict[str, Any]:
    """A handler that leaves a grandchild in a new session with no environment (not in
    the task's process group, no attempt marker), writes its pid, then ``then``."""
    script = f'setsid env -i sleep 1000 & echo $! > "$1"; {then}'
    return {"command": ["sh", "-c", script, "sh", str(pid_file)]}


def grandchild(pid_file: Path) -> int:
    return int(wait_for(lambda: pid_file.exists() and pid_file.read_text().strip(), timeout=20))


def assert_gone(pid: int) -> None:
    wait_for(lambda: not pid_alive(pid), timeout=20, message=f"pid {pid} gone")


def attempt_groups(task_id: str) -> list[Path]:
    mount = _cgroup2()
    assert mount is not None
    return list(mount.glob(f"**/provisioning-tasks/{task_id}.*"))


@needs_cgroup2
def test_cancel_ends_a_setsid_grandchild(daemon: Daemon, tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    task_id = daemon.submit(escaper(pid_file, "sleep 300"))
    daemon.wait_status(task_id, {"running"})
    pid = grandchild(pid_file)
    assert pid_alive(pid)
    assert attempt_groups(task_id), "the attempt runs in a cgroup of its own"
    assert daemon.http.post(f"/tasks/{task_id}/cancel").status_code == 200
    assert daemon.wait_status(task_id)["status"] == "cancelled"
    assert_gone(pid)
    wait_for(lambda: not attempt_groups(task_id), timeout=10, message="cgroup removed")


@needs_cgroup2
def test_timeout_ends_a_setsid_grandchild(daemon: Daemon, tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    task_id = daemon.submit(
        escaper(pid_file, "sleep 300"), timeout_seconds=3, retry={"max_attempts": 1}
    )
    pid = grandchild(pid_file)
    assert daemon.wait_status(task_id, timeout=30)["status"] == "timed_out"
    assert_gone(pid)


@needs_cgroup2
def test_normal_exit_ends_a_setsid_grandchild(daemon: Daemon, tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    task_id = daemon.submit(escaper(pid_file, "exit 0"))
    assert daemon.wait_status(task_id)["status"] == "completed"
    assert_gone(grandchild(pid_file))
    logs = [line["line"] for line in daemon.http.get(f"/tasks/{task_id}/logs").json()["lines"]]
    assert any(line.startswith("[provisioning] used ") and "CPU" in line for line in logs)


@needs_cgroup2
def test_a_double_fork_ends_with_its_task(daemon: Daemon, tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    # The subshell forks the session leader and exits at once: the grandchild is
    # reparented; the handler waits for its pid to be written, then exits 0.
    script = (
        '(setsid sh -c \'env -i sleep 1000 & echo $! > "$1"\' sh "$1" &); '
        'while [ ! -s "$1" ]; do sleep 0.05; done; exit 0'
    )
    task_id = daemon.submit({"command": ["sh", "-c", script, "sh", str(pid_file)]})
    assert daemon.wait_status(task_id)["status"] == "completed"
    assert_gone(grandchild(pid_file))


@needs_cgroup2
def test_kill9_and_restart_then_cancel_ends_a_setsid_grandchild(
    make_daemon: Any, tmp_path: Path
) -> None:
    daemon: Daemon = make_daemon().start()
    pid_file = tmp_path / "pid"
    task_id = daemon.submit(escaper(pid_file, "sleep 300"))
    daemon.wait_status(task_id, {"running"})
    pid = grandchild(pid_file)
    daemon.kill9()
    assert pid_alive(pid)  # its supervisor runs it on while the daemon is down
    daemon.start()
    assert pid_alive(pid)  # re-adopted, not killed
    assert daemon.http.post(f"/tasks/{task_id}/cancel").status_code == 200
    assert daemon.wait_status(task_id)["status"] == "cancelled"
    assert_gone(pid)
    assert [a["status"] for a in daemon.task(task_id)["attempts"]] == ["cancelled"]


@needs_cgroup2
def test_a_running_tasks_cpu_is_read_from_its_cgroup(daemon: Daemon) -> None:
    task_id = daemon.submit({"command": ["sh", "-c", "while :; do :; done"]})
    daemon.wait_status(task_id, {"running"})
    usage = wait_for(
        lambda: (u := daemon.task(task_id)["usage"]) and u["cpu_seconds"] > 0.2 and u,
        timeout=30,
        message="CPU time used",
    )
    assert usage["cpu_seconds"] > 0.2
    assert daemon.http.post(f"/tasks/{task_id}/cancel").status_code == 200
    assert daemon.wait_status(task_id)["usage"] is None  # only while it runs


def _memory_controller() -> bool:
    mount = _cgroup2()
    return mount is not None and "memory" in (mount / "cgroup.controllers").read_text().split()


@needs_cgroup2
def test_memory_max_caps_the_tree_or_says_it_cannot(make_daemon: Any) -> None:
    daemon: Daemon = make_daemon(memory_max="64M").start()
    if not _memory_controller():
        # This machine's memory controller is bound to a cgroup v1 hierarchy.
        assert "the cgroup v2 memory controller is not available" in daemon.log()
        return
    hog = "import time; b = bytearray(512 * 1024 * 1024); time.sleep(30)"
    task_id = daemon.submit({"command": ["python3", "-c", hog]}, retry={"max_attempts": 1})
    task = daemon.wait_status(task_id, timeout=60)
    assert task["status"] == "failed"
    assert "SIGKILL" in task["error"]
