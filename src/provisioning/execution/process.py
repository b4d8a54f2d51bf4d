"""Run one handler process in its own process group and watch it live.

Timeout, cancel and shutdown all end the *whole group*: SIGTERM, a grace period,
then SIGKILL. After the leader exits the group is killed once more, so no
grandchild outlives its task.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import shutil
import signal
import subprocess
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from ..tasks import CONTROL_FD_VAR, EXIT_PERMANENT, AttemptStatus, Outcome, parse_line
from . import procfs
from .cgroups import TaskCgroup
from .environment import TaskUser
from .logbudget import MIB, LogBudget
from .procfs import ProcessInfo

LOG_FLUSH_SECONDS = 0.2
LOG_FLUSH_LINES = 500
STDERR_TAIL_LINES = 20
MAX_LINE_BYTES = 1024 * 1024
DRAIN_SECONDS = 2.0
# The handler's end of the control pipe: protocol lines there cannot be forged by
# output that merely echoes data (stdout parsing stays, for compatibility).
# Enter the attempt's cgroup before the handler starts: the wrapper waits until the
# daemon has moved it (one line on stdin), then becomes the handler. A constant
# script; the handler's argv follows as its positional parameters, never spliced in.
_ENTER_CGROUP = 'read -r _ready; exec "$@" </dev/null'

log = logging.getLogger("provisioning.execution")


@dataclass(frozen=True)
class Confinement:
    """Where and as whom a handler runs: its attempt's cgroup (when cgroups can be had),
    an unprivileged user, a control pipe, the umask of the files it creates."""

    cgroup: TaskCgroup | None = None
    user: TaskUser | None = None
    control_pipe: bool = True
    umask: int = -1
    # After a normal exit, what left the process group (a service the platform's own
    # operation started in a session of its own) is handed to this instead of killed.
    release: Callable[[TaskCgroup], int] | None = None


class StopReason(StrEnum):
    CANCEL = "cancel"
    SHUTDOWN = "shutdown"


@dataclass
class ProcessHooks:
    """Callbacks into the caller (the scheduler persists what they receive).

    ``on_spawn`` runs synchronously; the others are started as tasks in the order
    the output came, and all have finished when :func:`run_process` returns, unless
    ``queued_in_order``: the caller's hooks queue their writes before returning (a
    FIFO store queue), so its next write, the outcome, lands after them anyway and
    need not wait for their answers; the caller awaits them itself.
    """

    on_spawn: Callable[[ProcessInfo], None]
    on_progress: Callable[[int, str | None], Awaitable[None]]
    on_logs: Callable[[list[tuple[str, str, float]]], Awaitable[None]]
    queued_in_order: bool = False


def kill_group(pgid: int, sig: int = signal.SIGKILL) -> bool:
    """Signal a process group; ``False`` when it no longer exists."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class _Watch(asyncio.SubprocessProtocol):
    """Output and exit of one handler, straight from the event loop's callbacks (no
    stream readers or reader tasks: this runs once per task, thousands of times)."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, hooks: ProcessHooks, log_keep_bytes: int
    ) -> None:
        self._loop = loop
        self._hooks = hooks
        self._budget = LogBudget(log_keep_bytes)
        self._partial = {1: bytearray(), 2: bytearray()}
        self._open_pipes = 2
        self._lines: list[tuple[str, str, float]] = []
        self._flush_at = 0.0
        self.exited: asyncio.Future[None] = loop.create_future()
        self.drained: asyncio.Future[None] = loop.create_future()
        self.pending: list[asyncio.Future[None]] = []
        self.result: list[Any] = []
        self.control_result: list[Any] = []
        self.control_used = False
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
        if fd not in self._partial:
            return  # stdin (the cgroup handshake)
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
        if not self.control_used:
            # Once the handler speaks on the control pipe, stdout is only its log.
            if parsed.kind == "progress":
                assert parsed.progress is not None
                self._spawn(self._hooks.on_progress(parsed.progress, parsed.message))
            elif parsed.kind == "result":
                self.result[:] = [parsed.result]
        self._keep(("stdout", parsed.text, time.time()), len(raw) + 1)

    def control_line(self, text: str) -> None:
        parsed = parse_line(text)
        if parsed.kind == "progress":
            assert parsed.progress is not None
            self.control_used = True
            self._spawn(self._hooks.on_progress(parsed.progress, parsed.message))
        elif parsed.kind == "result":
            self.control_used = True
            self.control_result[:] = [parsed.result]
        elif text.strip():
            self._keep(("stdout", text, time.time()), len(text) + 1)
        self._maybe_flush()

    @property
    def final_result(self) -> list[Any]:
        return self.control_result if self.control_used else self.result

    def _keep(self, entry: tuple[str, str, float], size: int) -> None:
        if self._budget.admit(entry, size):
            self._lines.append(entry)

    def finish_logs(self) -> None:
        """After the process ended: the kept tail of an over-long output, then flush."""
        self._lines += self._budget.drain()
        self.flush()

    def note(self, text: str) -> None:
        """A line of the orchestrator's own in the task's log."""
        self._lines.append(("stderr", f"[provisioning] {text}", time.time()))

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

    async def settled(self) -> None:
        """The hooks' writes done, where the outcome must wait for them."""
        if self.pending and not self._hooks.queued_in_order:
            await asyncio.gather(*self.pending)


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


class _Control(asyncio.Protocol):
    """The daemon's end of the control pipe: protocol lines, one per line."""

    def __init__(self, watch: _Watch) -> None:
        self._watch = watch
        self._partial = bytearray()
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        self._partial += data
        while (end := self._partial.find(b"\n")) >= 0:
            self._watch.control_line(bytes(self._partial[:end]).decode("utf-8", "replace"))
            del self._partial[: end + 1]
        if len(self._partial) > MAX_LINE_BYTES:
            self._partial.clear()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._partial:
            self._watch.control_line(bytes(self._partial).decode("utf-8", "replace"))
            self._partial.clear()
        if not self.closed.done():
            self.closed.set_result(None)


def _startable(argv: Sequence[str], env: Mapping[str, str]) -> str | None:
    """Why ``argv[0]`` cannot be executed, or ``None`` (the wrapper shell would
    otherwise turn a missing binary into its own exit code 127)."""
    name = argv[0]
    if os.sep in name:
        return None if os.access(name, os.X_OK) else "No such file or directory"
    return None if shutil.which(name, path=env.get("PATH", os.defpath)) else "not found on PATH"


_RESOLVED: dict[tuple[str, str], str] = {}


def _resolved(name: str, env: Mapping[str, str]) -> str | None:
    """``name``'s absolute path on the task's PATH, cached per (name, PATH): a child
    given a bare name tries every PATH entry with a failing ``execve`` before the right
    one. ``None`` (a path already, or not found): the child resolves it as before."""
    if os.sep in name:
        return None
    path = env.get("PATH", os.defpath)
    found = _RESOLVED.get((name, path))
    if found is not None and os.access(found, os.X_OK):
        return found
    found = shutil.which(name, path=path)
    if found is None or not os.path.isabs(found):
        _RESOLVED.pop((name, path), None)
        return None
    if len(_RESOLVED) >= 1024:
        _RESOLVED.clear()
    _RESOLVED[(name, path)] = found
    return found


async def _spawn(
    loop: asyncio.AbstractEventLoop,
    watch: _Watch,
    argv: Sequence[str],
    env: Mapping[str, str],
    cwd: str | None,
    confine: Confinement,
) -> tuple[asyncio.SubprocessTransport, asyncio.BaseTransport | None, _Control | None]:
    """Start the handler; raises ``OSError``."""
    extra: dict[str, Any] = {"umask": confine.umask}
    if confine.user is not None:
        extra.update(user=confine.user.uid, group=confine.user.gid, extra_groups=[])
    spawn_env = dict(env)
    read_end = write_end = -1
    if confine.control_pipe:
        read_end, write_end = os.pipe()
        spawn_env[CONTROL_FD_VAR] = str(write_end)
        extra["pass_fds"] = (write_end,)
    command = list(argv)
    stdin: int = subprocess.DEVNULL
    if confine.cgroup is not None:
        command = ["/bin/sh", "-c", _ENTER_CGROUP, "provisioning-task", *argv]
        stdin = subprocess.PIPE
    elif confine.user is None and (program := _resolved(argv[0], env)) is not None:
        extra["executable"] = program  # argv[0] stays what the task wrote
    try:
        transport, _ = await loop.subprocess_exec(
            lambda: watch,
            *command,
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=spawn_env,
            cwd=cwd,
            start_new_session=True,
            **extra,
        )
    except BaseException:
        if read_end >= 0:
            os.close(read_end)
        raise
    finally:
        if write_end >= 0:
            os.close(write_end)
    if confine.cgroup is not None:
        try:
            confine.cgroup.add(transport.get_pid())
        except OSError as exc:
            log.warning(
                "cannot move pid %d into %s: %s", transport.get_pid(), confine.cgroup.path, exc
            )
        ready = transport.get_pipe_transport(0)
        assert isinstance(ready, asyncio.WriteTransport)
        ready.write(b"\n")
        ready.close()
    control: _Control | None = None
    pipe: asyncio.BaseTransport | None = None
    if read_end >= 0:
        control = _Control(watch)
        pipe, _ = await loop.connect_read_pipe(lambda: control, os.fdopen(read_end, "rb", 0))
    return transport, pipe, control


def _signal_all(pgid: int, cgroup: TaskCgroup | None, sig: int) -> None:
    kill_group(pgid, sig)
    if cgroup is not None:
        if sig == signal.SIGKILL:
            cgroup.kill()
        else:
            cgroup.signal(sig)


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
    confine: Confinement = Confinement(),
) -> Outcome:
    """Run ``argv`` to the end, a timeout, or ``stop`` resolving; never raises for the
    handler's own failures."""
    loop = asyncio.get_running_loop()
    watch = _Watch(loop, hooks, log_keep_bytes)
    cgroup = confine.cgroup
    problem = _startable(argv, env) if cgroup is not None else None
    if problem is not None:
        return Outcome(
            AttemptStatus.FAILED, error=f"cannot start {argv[0]!r}: {problem}", permanent=True
        )
    try:
        transport, pipe, control = await _spawn(loop, watch, argv, env, cwd, confine)
    except OSError as exc:
        return Outcome(
            AttemptStatus.FAILED,
            error=f"cannot start {argv[0]!r}: {exc.strerror}",
            permanent=True,
        )

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
            _signal_all(pgid, cgroup, signal.SIGTERM)
            if await _first(loop, [watch.exited], kill_grace) is None:
                _signal_all(pgid, cgroup, signal.SIGKILL)
            await watch.exited
    finally:
        # Descendants may still hold the pipes or run on (setsid, double forks): end the
        # whole tree, the cgroup when there is one, the group in any case; only services
        # of the platform's own operations that exited normally are kept.
        keep = confine.release is not None and stopped is None and not timed_out
        _signal_all(pgid, None if keep else cgroup, signal.SIGKILL)
        if not watch.exited.done():
            await watch.exited
        drains: list[asyncio.Future[Any]] = [watch.drained]
        if control is not None:
            drains.append(control.closed)
        await _first(loop, [asyncio.gather(*drains)], DRAIN_SECONDS)
        if cgroup is not None:
            usage = cgroup.usage()
            if keep and confine.release is not None:
                await loop.run_in_executor(None, confine.release, cgroup)
            elif not await loop.run_in_executor(None, cgroup.end):
                watch.note(f"processes of {cgroup.path} did not end in time")
            if usage.cpu_seconds is not None:
                watch.note(usage.describe())
        code = transport.get_returncode()
        transport.close()
        if pipe is not None:
            pipe.close()
        watch.finish_logs()
        await watch.settled()

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
            result=watch.final_result[0] if watch.final_result else None,
            has_result=bool(watch.final_result),
        )
    return Outcome(
        AttemptStatus.FAILED,
        exit_code=code,
        error=_failure_text(code, watch.stderr_tail),
        permanent=code == EXIT_PERMANENT,
    )


def _failure_text(code: int | None, tail: deque[str]) -> str:
    if code is not None and code < 0:
        head = f"killed by signal {signal.Signals(-code).name}"
    else:
        head = f"exit code {code}"
    lines = [line for line in tail if line.strip()]
    return head + (": " + "\n".join(lines) if lines else "")


def ensure_dead(
    process: ProcessInfo | None,
    marker: tuple[str, str],
    *,
    wait_seconds: float = 10.0,
    cgroup: TaskCgroup | None = None,
) -> list[int]:
    """Kill what is left of an orphaned attempt and return only once it is gone.

    Blocking (used at recovery). Finds the attempt by its process group when
    that group is still the one we spawned (same boot, leader not reused), and
    by the attempt marker in the environment, which also catches processes that
    left the group or were spawned before their group was recorded, and by the
    attempt's cgroup, which holds every descendant whatever it did.
    """
    victims = set(procfs.pids_with_env(*marker))
    if cgroup is not None:
        victims |= set(cgroup.pids())
    # The report counts only what was alive (a zombie or a gone group was not killed).
    victims = {pid for pid in victims if not procfs.is_zombie_or_gone(pid)}
    if cgroup is not None:
        cgroup.kill()
    groups: set[int] = set()
    if process is not None and process.boot_id == procfs.boot_id():
        leader_ticks = procfs.start_ticks(process.pid)
        # A live leader with another start time is a reused pid: our group is gone.
        if (leader_ticks is None or leader_ticks == process.start_ticks) and procfs.pgid_alive(
            process.pgid
        ):
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
    if cgroup is not None:
        cgroup.end(max(deadline - time.monotonic(), 0.1))
    return sorted(victims | groups)
