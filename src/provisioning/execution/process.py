"""Run one handler process in its own process group and watch it live.

Timeout, cancel and shutdown all end the *whole group*: SIGTERM, a grace period,
then SIGKILL. After the leader exits the group is killed once more, so no
grandchild outlives its task.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import signal
import subprocess
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from ..tasks import AttemptStatus, Outcome, parse_line
from . import procfs
from .procfs import ProcessInfo

LOG_FLUSH_SECONDS = 0.2
LOG_FLUSH_LINES = 500
STDERR_TAIL_LINES = 20
MAX_LINE_BYTES = 1024 * 1024
DRAIN_SECONDS = 2.0
MIB = 1024 * 1024


class StopReason(StrEnum):
    CANCEL = "cancel"
    SHUTDOWN = "shutdown"


@dataclass
class ProcessHooks:
    """Callbacks into the caller (the scheduler persists what they receive).

    ``on_spawn`` runs synchronously; the others are started as tasks in the order
    the output came, and all have finished when :func:`run_process` returns.
    """

    on_spawn: Callable[[ProcessInfo], None]
    on_progress: Callable[[int, str | None], Awaitable[None]]
    on_logs: Callable[[list[tuple[str, str, float]]], Awaitable[None]]


def kill_group(pgid: int, sig: int = signal.SIGKILL) -> bool:
    """Signal a process group; ``False`` when it no longer exists."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class _LogBudget:
    """The first ``keep`` bytes of an attempt's output go to the store as they come;
    after that only the last ``keep`` bytes are held (in memory), written at the end
    behind a line saying how much was dropped between them."""

    def __init__(self, keep: int) -> None:
        self.head_left = keep
        self.keep = keep
        # Tiny lines cost far more memory than their bytes: bound their count too.
        self.max_tail_lines = max(1000, keep // 64)
        self.tail: deque[tuple[tuple[str, str, float], int]] = deque()
        self.tail_bytes = 0
        self.dropped_lines = 0
        self.dropped_bytes = 0

    def admit(self, entry: tuple[str, str, float], size: int) -> bool:
        """``True`` when the line goes to the store now; otherwise it is in the tail."""
        if self.head_left and size <= self.head_left:
            self.head_left -= size
            return True
        self.head_left = 0
        self.tail.append((entry, size))
        self.tail_bytes += size
        while self.tail and (self.tail_bytes > self.keep or len(self.tail) > self.max_tail_lines):
            _, dropped = self.tail.popleft()
            self.tail_bytes -= dropped
            self.dropped_lines += 1
            self.dropped_bytes += dropped
        return False

    def drain(self) -> list[tuple[str, str, float]]:
        lines = []
        if self.dropped_lines:
            note = (
                f"[provisioning] {self.dropped_lines} line(s), {self.dropped_bytes} bytes of "
                f"output dropped here: over the log limit (executor.log_keep_mib: the first "
                f"and last {self.keep / MIB:g} MiB are kept)"
            )
            lines.append(("stderr", note, time.time()))
        lines += [entry for entry, _ in self.tail]
        self.tail.clear()
        return lines


class _Watch(asyncio.SubprocessProtocol):
    """Output and exit of one handler, straight from the event loop's callbacks (no
    stream readers or reader tasks: this runs once per task, thousands of times)."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, hooks: ProcessHooks, log_keep_bytes: int
    ) -> None:
        self._loop = loop
        self._hooks = hooks
        self._budget = _LogBudget(log_keep_bytes)
        self._partial = {1: bytearray(), 2: bytearray()}
        self._open_pipes = 2
        self._lines: list[tuple[str, str, float]] = []
        self._flush_at = 0.0
        self.exited: asyncio.Future[None] = loop.create_future()
        self.drained: asyncio.Future[None] = loop.create_future()
        self.pending: list[asyncio.Future[None]] = []
        self.result: list[Any] = []
        self.stderr_tail: deque[str] = deque(maxlen=STDERR_TAIL_LINES)

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        buffer = self._partial[fd]
        buffer += data
        while True:
            end = buffer.find(b"\n")
            if end < 0:
                if len(buffer) > MAX_LINE_BYTES:
                    self._line(fd, bytes(buffer))
                    buffer.clear()
                break
            self._line(fd, bytes(buffer[:end]))
            del buffer[: end + 1]
        self._maybe_flush()

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        if self._partial.get(fd):
            self._line(fd, bytes(self._partial[fd]))
            self._partial[fd].clear()
        self._open_pipes -= 1
        if self._open_pipes <= 0 and not self.drained.done():
            self.drained.set_result(None)

    def process_exited(self) -> None:
        if not self.exited.done():
            self.exited.set_result(None)

    def _line(self, fd: int, raw: bytes) -> None:
        text = raw.decode("utf-8", errors="replace").rstrip("\r")
        if fd == 2:
            self.stderr_tail.append(text)
            self._keep(("stderr", text, time.time()), len(raw) + 1)
            return
        parsed = parse_line(text)
        if parsed.kind == "progress":
            assert parsed.progress is not None
            self._spawn(self._hooks.on_progress(parsed.progress, parsed.message))
        elif parsed.kind == "result":
            self.result[:] = [parsed.result]
        self._keep(("stdout", parsed.text, time.time()), len(raw) + 1)

    def _keep(self, entry: tuple[str, str, float], size: int) -> None:
        if self._budget.admit(entry, size):
            self._lines.append(entry)

    def finish_logs(self) -> None:
        """After the process ended: the kept tail of an over-long output, then flush."""
        self._lines += self._budget.drain()
        self.flush()

    def _maybe_flush(self) -> None:
        now = time.monotonic()
        if len(self._lines) >= LOG_FLUSH_LINES or now >= self._flush_at:
            self.flush()
            self._flush_at = now + LOG_FLUSH_SECONDS

    def flush(self) -> None:
        if self._lines:
            lines, self._lines = self._lines, []
            self._spawn(self._hooks.on_logs(lines))

    def _spawn(self, work: Awaitable[None]) -> None:
        self.pending.append(asyncio.ensure_future(work))


def _settle_index(settle: Callable[[int | None], None], index: int, _: asyncio.Future[Any]) -> None:
    settle(index)


async def _first(
    loop: asyncio.AbstractEventLoop, futures: Sequence[asyncio.Future[Any]], timeout: float
) -> int | None:
    """Index of the first of ``futures`` to finish, or ``None`` after ``timeout``."""
    winner: asyncio.Future[int | None] = loop.create_future()

    def settle(index: int | None) -> None:
        if not winner.done():
            winner.set_result(index)

    for index, future in enumerate(futures):
        if future.done():
            settle(index)
        else:
            future.add_done_callback(functools.partial(_settle_index, settle, index))
    timer = loop.call_later(timeout, settle, None)
    try:
        return await winner
    finally:
        timer.cancel()


async def run_process(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: str | None,
    timeout: float,
    kill_grace: float,
    hooks: ProcessHooks,
    stop: asyncio.Future[StopReason],
    log_keep_bytes: int = 8 * MIB,
) -> Outcome:
    """Run ``argv`` to the end, a timeout, or ``stop`` resolving; never raises for the
    handler's own failures."""
    loop = asyncio.get_running_loop()
    watch = _Watch(loop, hooks, log_keep_bytes)
    try:
        transport, _ = await loop.subprocess_exec(
            lambda: watch,
            *argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )
    except OSError as exc:
        return Outcome(AttemptStatus.FAILED, error=f"cannot start {argv[0]!r}: {exc.strerror}")

    pid = transport.get_pid()
    pgid = pid  # start_new_session: the child leads a new session and group.
    hooks.on_spawn(
        ProcessInfo(
            pid=pid, pgid=pgid, start_ticks=procfs.start_ticks(pid) or 0, boot_id=procfs.boot_id()
        )
    )
    stopped: StopReason | None = None
    timed_out = False
    try:
        first = await _first(loop, [watch.exited, stop], timeout)
        if first != 0:
            if first == 1:
                stopped = stop.result()
            else:
                timed_out = True
            kill_group(pgid, signal.SIGTERM)
            if await _first(loop, [watch.exited], kill_grace) is None:
                kill_group(pgid, signal.SIGKILL)
            await watch.exited
    finally:
        # Grandchildren may still hold the pipes or run on: end the whole group.
        kill_group(pgid)
        if not watch.exited.done():
            await watch.exited
        await _first(loop, [watch.drained], DRAIN_SECONDS)
        code = transport.get_returncode()
        transport.close()
        watch.finish_logs()
        if watch.pending:
            await asyncio.gather(*watch.pending)

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
            result=watch.result[0] if watch.result else None,
            has_result=bool(watch.result),
        )
    return Outcome(
        AttemptStatus.FAILED, exit_code=code, error=_failure_text(code, watch.stderr_tail)
    )


def _failure_text(code: int | None, tail: deque[str]) -> str:
    if code is not None and code < 0:
        head = f"killed by signal {signal.Signals(-code).name}"
    else:
        head = f"exit code {code}"
    lines = [line for line in tail if line.strip()]
    return head + (": " + "\n".join(lines) if lines else "")


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
