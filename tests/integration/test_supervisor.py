"""The task supervisor on its own (no daemon): it runs a handler, keeps its output
and status in the attempt's folder, and fences itself when its node's lease is not
renewed."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from provisioning.execution.follow import Fence, Found
from provisioning.execution.process import Confinement, ProcessHooks, StopReason
from provisioning.execution.procfs import start_ticks
from provisioning.execution.supervised import Supervisors
from provisioning.execution.supervisor import frames
from provisioning.tasks import AttemptStatus, Outcome
from tests.acceptance.conftest import pid_alive, supervisor_pids
from tests.conftest import wait_for

ENV = {"PATH": os.environ.get("PATH", os.defpath)}


class Recorder:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.spawned: list[int] = []

    def hooks(self) -> ProcessHooks:
        async def on_progress(progress: int, message: str | None) -> None:
            return None

        async def on_logs(lines: list[tuple[str, str, float]]) -> None:
            self.lines += [line for _, line, _ in lines]

        return ProcessHooks(
            on_spawn=lambda info: self.spawned.append(info.pid),
            on_progress=on_progress,
            on_logs=on_logs,
        )


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "data"
    folder.mkdir(mode=0o700)
    yield folder
    # The supervisor leaves with the process that started it (this test process
    # outlives it here): stop it, and whatever task it still runs.
    for pid in supervisor_pids(folder):
        os.kill(pid, 12)  # SIGUSR2
    wait_for(lambda: not supervisor_pids(folder), message="supervisors gone")


async def _run(
    sup: Supervisors,
    key: str,
    argv: list[str],
    recorder: Recorder,
    *,
    timeout: float = 30,
    stop: asyncio.Future[StopReason] | None = None,
) -> Outcome:
    request = sup.request(
        key,
        argv,
        env=ENV,
        cwd=None,
        timeout=timeout,
        kill_grace=0.5,
        confine=Confinement(),
        file_bytes=1 << 20,
    )
    future = stop if stop is not None else asyncio.get_running_loop().create_future()
    return await sup.run(request, hooks=recorder.hooks(), stop=future, log_keep_bytes=1 << 20)


def test_a_run_is_streamed_and_saved(data_dir: Path) -> None:
    sup = Supervisors(data_dir)
    recorder = Recorder()
    script = 'echo one; echo two >&2; echo "RESULT: {\\"n\\": 1}"; exit 0'
    outcome = asyncio.run(_run(sup, "t.1", ["sh", "-c", script], recorder))
    assert outcome.status is AttemptStatus.COMPLETED
    assert outcome.result == {"n": 1}
    assert {"one", "two"} <= set(recorder.lines)  # two pipes: no order between them
    folder = sup.folder("t.1")
    status = json.loads((folder / frames.STATUS).read_text())
    assert status["reason"] == "exited"
    assert status["exit_code"] == 0
    for name in (frames.STATUS, frames.OUTPUT, frames.SUPERVISOR):
        assert (folder / name).stat().st_mode & 0o777 == 0o600
    assert folder.stat().st_mode & 0o777 == 0o700
    assert sup.found("t.1") is Found.FINISHED
    sup.forget("t.1")
    assert not folder.exists()


def test_an_attempt_forgotten_soon_is_gone_once_closed(data_dir: Path) -> None:
    sup = Supervisors(data_dir)
    outcome = asyncio.run(_run(sup, "t.1", ["true"], Recorder()))
    assert outcome.status is AttemptStatus.COMPLETED
    folder = sup.folder("t.1")
    assert (folder / frames.STATUS).exists()
    sup.forget_soon("t.1")
    sup.close()
    assert not folder.exists()


def test_a_missing_program_is_a_permanent_failure(data_dir: Path) -> None:
    outcome = asyncio.run(_run(Supervisors(data_dir), "t.1", ["no-such-program"], Recorder()))
    assert outcome.status is AttemptStatus.FAILED
    assert outcome.permanent
    assert outcome.error == "cannot start 'no-such-program': No such file or directory"


def test_timeout_and_cancel_are_enforced_by_the_supervisor(data_dir: Path) -> None:
    sup = Supervisors(data_dir)

    async def both() -> tuple[Outcome, Outcome]:
        timed = await _run(sup, "t.1", ["sleep", "30"], Recorder(), timeout=0.3)
        stop: asyncio.Future[StopReason] = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_later(0.3, stop.set_result, StopReason.CANCEL)
        cancelled = await _run(sup, "t.2", ["sleep", "30"], Recorder(), stop=stop)
        return timed, cancelled

    timed, cancelled = asyncio.run(both())
    assert timed.status is AttemptStatus.TIMED_OUT
    assert cancelled.status is AttemptStatus.CANCELLED


def test_a_supervisor_whose_lease_is_not_renewed_stops_its_task(data_dir: Path) -> None:
    lease = data_dir / "leases" / "node-a"
    sup = Supervisors(data_dir, Fence(lease, after=0.6))
    recorder = Recorder()

    async def fenced() -> tuple[Outcome, float]:
        sup.renewed(time.monotonic())  # a heartbeat went through, then no more
        started = time.monotonic()
        outcome = await _run(sup, "t.1", ["sleep", "30"], recorder)
        return outcome, time.monotonic() - started

    outcome, took = asyncio.run(fenced())
    assert outcome.status is AttemptStatus.INTERRUPTED
    assert "lease was not renewed" in (outcome.error or "")
    assert took < 5
    [pid] = recorder.spawned
    assert not pid_alive(pid)


def test_renewals_keep_a_fenced_task_running(data_dir: Path) -> None:
    lease = data_dir / "leases" / "node-a"
    sup = Supervisors(data_dir, Fence(lease, after=0.6))

    async def renewing() -> Outcome:
        async def heartbeat() -> None:
            while True:
                sup.renewed(time.monotonic())
                await asyncio.sleep(0.1)

        beat = asyncio.ensure_future(heartbeat())
        try:
            return await _run(sup, "t.1", ["sleep", "1.5"], Recorder())
        finally:
            beat.cancel()

    assert asyncio.run(renewing()).status is AttemptStatus.COMPLETED


def test_an_attempt_followed_through_its_folder_skips_stored_lines(data_dir: Path) -> None:
    sup = Supervisors(data_dir)
    recorder = Recorder()
    script = "echo a; echo b; echo c"
    asyncio.run(_run(sup, "t.1", ["sh", "-c", script], Recorder()))
    assert sup.found("t.1") is Found.FINISHED

    async def adopt() -> Outcome | None:
        stop: asyncio.Future[StopReason] = asyncio.get_running_loop().create_future()
        return await sup.adopt(
            "t.1", hooks=recorder.hooks(), stop=stop, log_keep_bytes=1 << 20, stored_lines=2
        )

    outcome = asyncio.run(adopt())
    assert outcome is not None
    assert outcome.status is AttemptStatus.COMPLETED
    assert recorder.lines == ["c"]
    assert sup.found("t.2") is Found.GONE


def test_one_supervisor_serves_every_attempt_and_leaves_with_its_daemon(data_dir: Path) -> None:
    sup = Supervisors(data_dir)

    async def two() -> None:
        await _run(sup, "t.1", ["true"], Recorder())
        await _run(sup, "t.2", ["true"], Recorder())

    asyncio.run(two())
    first = json.loads((sup.folder("t.1") / frames.SUPERVISOR).read_text())
    second = json.loads((sup.folder("t.2") / frames.SUPERVISOR).read_text())
    assert first["pid"] == second["pid"]
    # It stays while the process that started it (this one, here) lives.
    assert supervisor_pids(data_dir) == [first["pid"]]


def test_sweep_forgets_ended_or_orphaned_folders_only(data_dir: Path) -> None:
    sup = Supervisors(data_dir)
    ended, orphaned, running, kept = (sup.folder(k) for k in ("a.1", "b.1", "c.1", "d.1"))
    for folder in (ended, orphaned, running, kept):
        folder.mkdir(parents=True)
    frames.write_json(ended / frames.STATUS, {"reason": "exited", "exit_code": 0})
    frames.write_json(orphaned / frames.SUPERVISOR, {"pid": 2**22 + 1, "start_ticks": 1})
    me = {"pid": os.getpid(), "start_ticks": start_ticks(os.getpid())}
    frames.write_json(running / frames.SUPERVISOR, me)
    sup.sweep(keep={"d.1"})
    assert not ended.exists()
    assert not orphaned.exists()
    assert running.exists()  # its supervisor lives: it may still run it
    assert kept.exists()
    assert sup.found("c.1") is Found.ALIVE


def test_a_restarted_node_drops_the_lease_files_of_its_earlier_lives(data_dir: Path) -> None:
    old = Supervisors(data_dir, Fence(frames.lease_file(data_dir, "node-old"), after=1))
    old.renewed(time.monotonic())
    new = Supervisors(data_dir, Fence(frames.lease_file(data_dir, "node-new"), after=1))
    new.renewed(time.monotonic())
    new.drop_other_leases()
    assert sorted(p.name for p in (data_dir / frames.LEASES).iterdir()) == ["node-new"]


def test_a_handler_inherits_only_its_pipes_and_default_signals(data_dir: Path) -> None:
    # Handlers are spawned without closing every descriptor: what the supervisor holds
    # is close-on-exec and what its daemon left open it closed when it started.
    leaked = os.open(os.devnull, os.O_RDONLY)
    os.set_inheritable(leaked, True)
    try:
        recorder = Recorder()
        script = 'ls /proc/$$/fd; grep SigIgn /proc/$$/status; echo "fd=$PROVISIONING_CONTROL_FD"'
        outcome = asyncio.run(_run(Supervisors(data_dir), "t.1", ["sh", "-c", script], recorder))
    finally:
        os.close(leaked)
    assert outcome.status is AttemptStatus.COMPLETED
    [control] = [line[3:] for line in recorder.lines if line.startswith("fd=")]
    fds = {line for line in recorder.lines if line.isdigit()}
    assert fds == {"0", "1", "2", control}
    [ignored] = [line.split()[1] for line in recorder.lines if line.startswith("SigIgn")]
    assert not int(ignored, 16) & (1 << (13 - 1))  # SIGPIPE, ignored by the supervisor


def test_a_request_whose_daemon_died_before_it_was_read_is_not_run(
    data_dir: Path, tmp_path: Path
) -> None:
    sup = Supervisors(data_dir)
    sup.start()
    ran = tmp_path / "ran"
    request = sup.request(
        "t.1",
        ["sh", "-c", f'touch "{ran}"'],
        env=ENV,
        cwd=None,
        timeout=30,
        kill_grace=0.5,
        confine=Confinement(),
        file_bytes=1 << 20,
    )
    # A daemon killed -9 right after asking: exited, not yet reaped by its parent.
    dead = subprocess.Popen(["true"])
    os.waitid(os.P_PID, dead.pid, os.WEXITED | os.WNOWAIT)
    request["daemon_pid"] = dead.pid
    try:
        wait_for(lambda: (given := sup.hand_over(request)) is not None and _closed(given))
    finally:
        dead.wait()
    assert not sup.folder("t.1").exists()
    assert not ran.exists()
    sup.close()
    # A daemon alive is still served: by that supervisor, or by a new one once that one
    # left (it followed the dead daemon, as a supervisor follows whoever asked last).
    again = Supervisors(data_dir)
    outcome = asyncio.run(_run(again, "t.2", ["sh", "-c", f'touch "{ran}"'], Recorder()))
    assert outcome.status is AttemptStatus.COMPLETED
    assert ran.exists()
    again.close()


def _closed(connection: socket.socket) -> bool:
    """The supervisor ended the connection without a word."""
    with connection:
        connection.settimeout(10)
        return connection.recv(1) == b""
