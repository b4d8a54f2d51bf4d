"""Following an attempt's supervisor: what it is asked to run, its frames into the
line parser, its saved status into the attempt's outcome."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

from ..tasks import CONTROL_FD_VAR, EXIT_PERMANENT, AttemptStatus, Outcome
from .cgroups import SERVICES
from .process import Confinement, ProcessHooks, _Control, _failure_text, _resolved, _Watch
from .supervisor import frames


class Found(StrEnum):
    """What a restarted daemon finds of an attempt it had running."""

    FINISHED = "finished"  # its status is saved
    ALIVE = "alive"  # its supervisor still runs it
    GONE = "gone"  # neither: it died with the machine, or its supervisor was killed


@dataclass(frozen=True)
class Fence:
    """On a shared store: the node's lease file, and how stale it may get."""

    lease_file: Path
    after: float


class _Feed:
    """Frames (from the connection or the file) into the line parser."""

    def __init__(self, watch: _Watch, control: _Control | None) -> None:
        self.watch = watch
        self.control = control
        self.buffer = bytearray()
        self.supervisor = 0
        self.handler = 0
        self.status: dict[str, Any] | None = None

    def take(self, data: bytes) -> list[bytes]:
        self.buffer += data
        kinds = []
        for kind, payload in frames.split_frames(self.buffer):
            kinds.append(kind)
            if kind in (frames.STDOUT, frames.STDERR):
                self.watch.pipe_data_received(frames.DATA_KINDS[kind], payload)
            elif kind == frames.CONTROL:
                if self.control is not None:
                    self.control.data_received(payload)
            elif kind == frames.SPAWNED:
                spawned = json.loads(payload)
                self.handler, self.supervisor = int(spawned["pid"]), int(spawned["supervisor"])
            elif kind == frames.EXITED:
                self.status = json.loads(payload)
        return kinds

    def end(self) -> None:
        for fd in (1, 2):
            self.watch.pipe_connection_lost(fd, None)
        if self.control is not None:
            self.control.connection_lost(None)
        for note in (self.status or {}).get("notes", []):
            self.watch.note(str(note))


class _Link(asyncio.Protocol):
    def __init__(self, feed: _Feed) -> None:
        loop = asyncio.get_running_loop()
        self.feed = feed
        self.started: asyncio.Future[None] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()

    def data_received(self, data: bytes) -> None:
        kinds = self.feed.take(data)
        if (frames.SPAWNED in kinds or frames.EXITED in kinds) and not self.started.done():
            self.started.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        for future in (self.started, self.closed):
            if not future.done():
                future.set_result(None)


def outcome_of(status: dict[str, Any], watch: _Watch) -> Outcome:
    """An attempt's outcome from its saved status and the output it printed."""
    reason, code = status.get("reason"), status.get("exit_code")
    code = int(code) if isinstance(code, int) else None
    if reason == "spawn_failed":
        error = f"cannot start {status.get('program')!r}: {status.get('error')}"
        return Outcome(AttemptStatus.FAILED, error=error, permanent=True)
    if reason == "cancel":
        return Outcome(AttemptStatus.CANCELLED, exit_code=code, error="cancelled")
    if reason == "shutdown":
        error = "interrupted by orchestrator shutdown"
        return Outcome(AttemptStatus.INTERRUPTED, exit_code=code, error=error)
    if reason == "fenced":
        error = "stopped by its supervisor: the node's lease was not renewed in time"
        return Outcome(AttemptStatus.INTERRUPTED, exit_code=code, error=error)
    if reason == "timeout":
        error = f"timed out after {float(status.get('timeout', 0)):g} s"
        return Outcome(AttemptStatus.TIMED_OUT, exit_code=code, error=error)
    if code == 0:
        result = watch.final_result
        return Outcome(
            AttemptStatus.COMPLETED,
            exit_code=0,
            result=result[0] if result else None,
            has_result=bool(result),
        )
    return Outcome(
        AttemptStatus.FAILED,
        exit_code=code,
        error=_failure_text(code, watch.stderr_tail),
        permanent=code == EXIT_PERMANENT,
    )


def skipping(hooks: ProcessHooks, count: int) -> ProcessHooks:
    """Hooks that drop the first ``count`` log lines (the store has them already)."""
    left = [count]

    def on_logs(lines: list[tuple[str, str, float]]) -> Any:
        skip = min(left[0], len(lines))
        left[0] -= skip
        return hooks.on_logs(lines[skip:])

    return replace(hooks, on_logs=on_logs)


def replay(feed: _Feed, path: Path, offset: int) -> int:
    """Feed what the attempt's output file holds past ``offset``; how much that was."""
    try:
        with open(path, "rb") as handle:
            handle.seek(offset)
            data = handle.read()
    except FileNotFoundError:
        return 0
    feed.take(data)
    return len(data)


def request_for(
    folder: Path,
    fence: Fence | None,
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: str | None,
    timeout: float,
    kill_grace: float,
    confine: Confinement,
    file_bytes: int,
) -> dict[str, Any]:
    """What the supervisor is told to run for an attempt (JSON; never a shell line)."""
    cgroup = confine.cgroup
    user = confine.user
    services = None
    if cgroup is not None and confine.release is not None:
        services = str(cgroup.path.parent.parent / SERVICES)
    return {
        "dir": str(folder),
        "argv": list(argv),
        "env": dict(env),
        "executable": _resolved(argv[0], env) if user is None else None,
        "cwd": cwd,
        "cgroup": str(cgroup.path) if cgroup is not None else None,
        "services": services,
        "uid": user.uid if user is not None else None,
        "gid": user.gid if user is not None else None,
        "umask": confine.umask,
        "control": confine.control_pipe,
        "control_var": CONTROL_FD_VAR,
        "daemon_pid": os.getpid(),
        "timeout": timeout,
        "grace": kill_grace,
        "lease_file": str(fence.lease_file) if fence else None,
        "fence_after": fence.after if fence else None,
        "file_bytes": file_bytes,
    }
