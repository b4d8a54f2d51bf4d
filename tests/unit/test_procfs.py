"""/proc helpers, read from a fake /proc in tmp_path (no real process is inspected)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from provisioning.execution import procfs


def stat_line(pid: int, comm: str, state: str, pgrp: int, starttime: int) -> str:
    # Fields 1..22 of /proc/PID/stat: pid (comm) state ppid pgrp session ... starttime.
    middle = ["1", str(pgrp), str(pgrp)] + ["0"] * 15
    return f"{pid} ({comm}) {state} {' '.join(middle)} {starttime} 0 0\n"


@pytest.fixture
def proc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setattr(procfs, "PROC", tmp_path)
    procfs.boot_id.cache_clear()  # The boot id is read once per process.
    yield tmp_path
    procfs.boot_id.cache_clear()


def add_process(
    proc: Path,
    pid: int,
    *,
    comm: str = "nu",
    state: str = "S",
    pgrp: int = 100,
    starttime: int = 5000,
    environ: dict[str, str] | None = None,
) -> None:
    folder = proc / str(pid)
    folder.mkdir()
    (folder / "stat").write_text(stat_line(pid, comm, state, pgrp, starttime))
    env = environ or {}
    (folder / "environ").write_bytes(b"".join(f"{k}={v}\0".encode() for k, v in env.items()))


def test_stat_line_helper_puts_starttime_in_field_22() -> None:
    fields = stat_line(1, "x", "S", 7, 99).split()
    assert (fields[2], fields[4], fields[21]) == ("S", "7", "99")


@pytest.mark.parametrize("comm", ["nu", "my task", "weird) (name", "a) S 1 2 3 (b"])
def test_start_ticks_reads_field_22_whatever_the_command_name(proc: Path, comm: str) -> None:
    add_process(proc, 321, comm=comm, starttime=987654)
    assert procfs.start_ticks(321) == 987654


def test_start_ticks_of_a_gone_process_is_none(proc: Path) -> None:
    assert procfs.start_ticks(999) is None


@pytest.mark.parametrize(("state", "expected"), [("S", False), ("R", False), ("Z", True)])
def test_is_zombie_or_gone(proc: Path, state: str, expected: bool) -> None:
    add_process(proc, 10, state=state)
    assert procfs.is_zombie_or_gone(10) is expected
    assert procfs.is_zombie_or_gone(11) is True


def test_boot_id_is_read_and_stripped(proc: Path) -> None:
    (proc / "sys" / "kernel" / "random").mkdir(parents=True)
    (proc / "sys" / "kernel" / "random" / "boot_id").write_text("abc-123\n")
    assert procfs.boot_id() == "abc-123"


def test_boot_id_without_proc_is_empty(proc: Path) -> None:
    assert procfs.boot_id() == ""


def test_pids_with_env_matches_the_exact_variable(proc: Path) -> None:
    add_process(proc, 1, environ={"PROVISIONING_ATTEMPT": "t1/2", "HOME": "/root"})
    add_process(proc, 2, environ={"PROVISIONING_ATTEMPT": "t1/20"})
    add_process(proc, 3, environ={"OTHER": "PROVISIONING_ATTEMPT=t1/2"})
    add_process(proc, 4, environ={"PROVISIONING_ATTEMPT": "t1/2"})
    (proc / "self").mkdir()
    (proc / "55").mkdir()  # vanished: no environ file
    assert sorted(procfs.pids_with_env("PROVISIONING_ATTEMPT", "t1/2")) == [1, 4]
    assert procfs.pids_with_env("PROVISIONING_ATTEMPT", "t9/1") == []


def test_pgid_alive_ignores_zombies_of_the_group(proc: Path) -> None:
    group = os.getpgrp()  # an existing group, so killpg(group, 0) succeeds
    add_process(proc, 1, state="Z", pgrp=group)
    add_process(proc, 2, state="S", pgrp=group + 1)
    assert procfs.pgid_alive(group) is False
    add_process(proc, 3, state="S", pgrp=group)
    assert procfs.pgid_alive(group) is True
