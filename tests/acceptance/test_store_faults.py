"""Damaged, read-only and full stores (issue 15, point 3c), injected for real: a
garbage file, overwritten pages, a read-only bind mount, a 3 MB tmpfs."""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.acceptance.conftest import BIN, Daemon
from tests.conftest import wait_for

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="mounting needs root")


def start_fails(daemon: Daemon) -> tuple[int, str]:
    run = subprocess.run(
        [str(BIN / "provisioning-orchestrator"), "--config", str(daemon.config)],
        env=daemon.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "Traceback" not in run.stderr + run.stdout
    mine = [line for line in run.stderr.splitlines() if line.startswith("provisioning-orch")]
    assert len(mine) == 1, run.stderr
    return run.returncode, mine[0]


def test_a_file_that_is_not_a_database_stops_start_up_in_one_line(make_daemon: Any) -> None:
    daemon = make_daemon()
    daemon.data_dir.mkdir(parents=True)
    (daemon.data_dir / "orchestrator.db").write_bytes(b"this is not sqlite\n" * 100)
    code, line = start_fails(daemon)
    assert code == 2
    assert str(daemon.data_dir / "orchestrator.db") in line
    assert "not a usable orchestrator database" in line
    assert "move it" in line


def test_a_damaged_database_stops_start_up_in_one_line(make_daemon: Any) -> None:
    daemon = make_daemon().start()
    for n in range(40):
        daemon.submit({"command": ["echo", str(n)]}, params={"pad": "x" * 2000})
    daemon.stop()
    path = daemon.data_dir / "orchestrator.db"
    size = path.stat().st_size
    assert size > 8 * 4096
    with open(path, "r+b") as handle:  # overwrite pages in the middle (not the header)
        handle.seek(2 * 4096)
        handle.write(os.urandom(size - 3 * 4096))
    code, line = start_fails(daemon)
    assert code == 2
    assert str(path) in line
    assert "damaged" in line or "not a usable" in line


@contextlib.contextmanager
def read_only(folder: Path) -> Iterator[None]:
    subprocess.run(["mount", "--bind", str(folder), str(folder)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(folder)], check=True)
        yield
    finally:
        subprocess.run(["umount", str(folder)], check=True)


@needs_root
def test_a_read_only_data_dir_stops_start_up_in_one_line(make_daemon: Any) -> None:
    daemon = make_daemon().start()
    daemon.stop()
    with read_only(daemon.data_dir):
        code, line = start_fails(daemon)
    assert code == 2
    assert str(daemon.data_dir) in line
    assert "Read-only file system" in line
    assert "must be able to write" in line


@contextlib.contextmanager
def small_tmpfs(folder: Path, size: str) -> Iterator[Path]:
    folder.mkdir(parents=True)
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "pvf-full", str(folder)],
        check=True,
    )
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=True)


def fill(folder: Path) -> Path:
    """Take every free byte of ``folder``'s filesystem."""
    filler = folder / "filler"
    with open(filler, "wb") as handle:
        while True:
            try:
                handle.write(b"\0" * 65536)
                handle.flush()
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
                break
    return filler


@needs_root
def test_a_full_disk_answers_507_degrades_health_and_recovers(
    make_daemon: Any, tmp_path: Path
) -> None:
    with small_tmpfs(tmp_path / "small", "3m") as small:
        daemon: Daemon = make_daemon(
            {"storage": {"data_dir": str(small / "data")}}, shutdown_grace_seconds=5
        )
        daemon.data_dir = small / "data"
        daemon.start()
        before = daemon.submit({"command": ["echo", "before"]})
        daemon.wait_status(before)
        filler = fill(small)
        # Submissions now fail cleanly: 507 JSON, never a 500 or a reset connection.
        statuses = []
        for n in range(200):
            response = daemon.http.post(
                "/tasks",
                json={"name": f"t{n}", "run": {"command": ["true"]}, "params": {"p": "y" * 60_000}},
            )
            statuses.append(response.status_code)
            if response.status_code == 507:
                break
        assert statuses[-1] == 507, statuses
        assert set(statuses) <= {201, 507}, statuses
        assert response.json()["error"].startswith("store full")
        health = httpx.get(daemon.url + "/health", timeout=5).json()
        assert health["status"] == "degraded"
        assert daemon.http.get(f"/tasks/{before}").status_code == 200  # reads still work
        # Space returns: work resumes without a restart.
        filler.unlink()
        after = wait_for(
            lambda: _submitted(daemon), timeout=30, message="a submission accepted again"
        )
        assert daemon.wait_status(after)["status"] == "completed"
        wait_for(
            lambda: httpx.get(daemon.url + "/health", timeout=5).json()["status"] == "healthy",
            timeout=30,
            message="healthy again",
        )
        # Full again, with a task running: SIGTERM still stops the daemon within its grace.
        running = daemon.submit(
            {"command": ["sh", "-c", "yes output | head -c 20000000; sleep 60"]}
        )
        daemon.wait_status(running, {"running"})
        fill(small)
        started = time.monotonic()
        assert daemon.stop(signal.SIGTERM, timeout=60) == 0
        assert time.monotonic() - started < 30
        assert "Traceback" not in daemon.log()


def _submitted(daemon: Daemon) -> str | None:
    response = daemon.http.post("/tasks", json={"name": "after", "run": {"command": ["true"]}})
    return str(response.json()["task_id"]) if response.status_code == 201 else None
