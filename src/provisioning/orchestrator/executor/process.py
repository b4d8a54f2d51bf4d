"""Run one handler process in its own process group and watch it live.

Timeout, cancel and shutdown all end the *whole group*: SIGTERM, a grace period,
then SIGKILL. After the leader exits the group is killed once more, so no
grandchild outlives its task.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from ..models import AttemptStatus, Outcome, ProcessInfo
from . import procfs
from .output import parse_line

LOG_FLUSH_SECONDS = 0.2
LOG_FLUSH_LINES = 500
STDERR_TAIL_LINES = 20
MAX_LINE_BYTES = 1024 * 1024
DRAIN_SECONDS = 2.0


class StopReason(StrEnum):
    CANCEL = "cancel"
    SHUTDOWN = "shutdown"


@dataclass
class ProcessHooks:
    """Callbacks into the caller (the scheduler persists what they receive)."""

    on_spawn: Callable[[ProcessInfo], Awaitable[None]]
    on_progress: Callable[[int, str | None], Awaitable[None]]
    on_logs: Callable[[list[tuple[str, str, float]]], Awaitable[None]]


class _LogBuffer:
    def __init__(self, hooks: ProcessHooks) -> None:
        self._hooks = hooks
        self._lines: list[tuple[str, str, float]] = []
        self._last_flush = time.monotonic()

    async def add(self, stream: str, line: str) -> None:
        self._lines.append((stream, line, time.time()))
        if (
            len(self._lines) >= LOG_FLUSH_LINES
            or time.monotonic() - self._last_flush >= LOG_FLUSH_SECONDS
        ):
            await self.flush()

    async def flush(self) -> None:
        if self._lines:
            lines, self._lines = self._lines, []
            await self._hooks.on_logs(lines)
        self._last_flush = time.monotonic()


def kill_group(pgid: int, sig: int = signal.SIGKILL) -> bool:
    """Signal a process group; ``False`` when it no longer exists."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


async def run_process(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: str | None,
    timeout: float,
    kill_grace: float,
    hooks: ProcessHooks,
    stop: asyncio.Future[StopReason],
) -> Outcome:
    """Run ``argv`` to the end, a timeout, or ``stop`` resolving; never raises for the
    handler's own failures."""
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=dict(env),
            cwd=cwd,
            start_new_session=True,
            limit=MAX_LINE_BYTES,
        )
    except OSError as exc:
        return Outcome(AttemptStatus.FAILED, error=f"cannot start {argv[0]!r}: {exc.strerror}")

    pgid = proc.pid  # start_new_session: the child leads a new session and group.
    info = ProcessInfo(
        pid=proc.pid,
        pgid=pgid,
        start_ticks=procfs.start_ticks(proc.pid) or 0,
        boot_id=procfs.boot_id(),
    )
    logs = _LogBuffer(hooks)
    stderr_tail: deque[str] = deque(maxlen=STDERR_TAIL_LINES)
    result: list[Any] = []

    async def read_stdout() -> None:
        assert proc.stdout is not None
        async for raw in _lines(proc.stdout):
            parsed = parse_line(raw)
            if parsed.kind == "progress":
                assert parsed.progress is not None
                await hooks.on_progress(parsed.progress, parsed.message)
            elif parsed.kind == "result":
                result[:] = [parsed.result]
            await logs.add("stdout", parsed.text)

    async def read_stderr() -> None:
        assert proc.stderr is not None
        async for raw in _lines(proc.stderr):
            line = raw.rstrip("\r\n")
            stderr_tail.append(line)
            await logs.add("stderr", line)

    readers = asyncio.gather(read_stdout(), read_stderr())
    stopped: StopReason | None = None
    timed_out = False
    try:
        await hooks.on_spawn(info)
        waiter: asyncio.Future[object] = asyncio.ensure_future(proc.wait())
        watched: set[asyncio.Future[object]] = {waiter, stop}  # type: ignore[arg-type]
        done, _ = await asyncio.wait(watched, timeout=timeout, return_when="FIRST_COMPLETED")
        if waiter not in done:
            if stop in done:
                stopped = stop.result()
            else:
                timed_out = True
            await _terminate(proc, pgid, kill_grace)
        await waiter
    finally:
        # Grandchildren may still hold the pipes or run on: end the whole group.
        kill_group(pgid)
        if proc.returncode is None:
            await proc.wait()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(readers), DRAIN_SECONDS)
        if not readers.done():
            readers.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await readers
        await logs.flush()

    code = proc.returncode
    if stopped is StopReason.CANCEL:
        return Outcome(AttemptStatus.CANCELLED, exit_code=code, error="cancelled")
    if stopped is StopReason.SHUTDOWN:
        return Outcome(
            AttemptStatus.INTERRUPTED, exit_code=code, error="interrupted by orchestrator shutdown"
        )
    if timed_out:
        return Outcome(
            AttemptStatus.TIMED_OUT, exit_code=code, error=f"timed out after {timeout:g} s"
        )
    if code == 0:
        return Outcome(
            AttemptStatus.COMPLETED,
            exit_code=0,
            result=result[0] if result else None,
            has_result=bool(result),
        )
    return Outcome(AttemptStatus.FAILED, exit_code=code, error=_failure_text(code, stderr_tail))


def _failure_text(code: int | None, tail: deque[str]) -> str:
    if code is not None and code < 0:
        head = f"killed by signal {signal.Signals(-code).name}"
    else:
        head = f"exit code {code}"
    lines = [line for line in tail if line.strip()]
    return head + (": " + "\n".join(lines) if lines else "")


async def _terminate(proc: asyncio.subprocess.Process, pgid: int, grace: float) -> None:
    kill_group(pgid, signal.SIGTERM)
    try:
        await asyncio.wait_for(proc.wait(), grace)
    except TimeoutError:
        kill_group(pgid, signal.SIGKILL)


async def _lines(stream: asyncio.StreamReader) -> Any:
    while True:
        try:
            raw = await stream.readline()
        except ValueError:
            # A line longer than the limit: take what is buffered as one line.
            raw = await stream.read(MAX_LINE_BYTES)
        if not raw:
            return
        yield raw.decode("utf-8", errors="replace")


def ensure_dead(
    process: ProcessInfo | None, marker: tuple[str, str], *, wait_seconds: float = 10.0
) -> list[int]:
    """Kill what is left of an orphaned attempt and return only once it is gone.

    Blocking (used at recovery). Finds the attempt by its process group when
    that group is still the one we spawned (same boot, leader not reused), and
    by the attempt marker in the environment, which also catches processes that
    left the group or were spawned before their group was recorded.
    """
    victims = set(procfs.pids_with_env(*marker))
    groups: set[int] = set()
    if process is not None and process.boot_id == procfs.boot_id():
        leader_ticks = procfs.start_ticks(process.pid)
        # A live leader with another start time is a reused pid: our group is gone.
        if leader_ticks is None or leader_ticks == process.start_ticks:
            groups.add(process.pgid)
    for pgid in groups:
        kill_group(pgid)
    for pid in victims:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + wait_seconds
    while time.monotonic() < deadline:
        alive = [g for g in groups if procfs.pgid_alive(g)] + [
            p for p in victims if not procfs.is_zombie_or_gone(p)
        ]
        if not alive:
            break
        time.sleep(0.02)
    return sorted(victims | groups)
