"""One attempt under the data dir's supervisor: runs the handler, keeps its output and
exit status in the attempt's folder, streams both to the daemon while the daemon is
there, and enforces the attempt's limits itself (timeout, stop requests, the node's
lease), so a daemon that died leaves nothing unsupervised.

Event-driven: the supervisor's one loop calls :meth:`Attempt.readable`,
:meth:`Attempt.reaped` and :meth:`Attempt.tick`; nothing here blocks for long.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from ..cgroups import TaskCgroup, release_into
from . import frames
from .child import Launch, spawn, spawn_error

DRAIN_SECONDS = 2.0
END_SECONDS = 10.0
READ_BYTES = 65536
# Past this much unsent output the handler's pipes are not read (back-pressure) while
# the timers still run: a stalled daemon must not stall the self-fence.
MAX_UNSENT = 1 << 20
STOP_FILE = "stop"
_PENDING = b"?"  # not a frame kind: the spawn helper's error pipe


class Attempt:
    def __init__(
        self,
        conn: socket.socket | None,
        request: dict[str, Any],
        hub_id: Any,
        helper: str | None = None,
    ) -> None:
        self.conn = conn
        self.req = request
        self.folder = Path(request["dir"])
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.cgroup = TaskCgroup(Path(request["cgroup"])) if request.get("cgroup") else None
        self.hub_id = hub_id
        self.helper = helper
        self.pending = -1
        self.spawn_errno: int | None = None  # 0: the handler runs
        self.unsent = bytearray()
        self.file_room = int(request.get("file_bytes", 64 << 20))
        self.output = os.open(
            self.folder / frames.OUTPUT, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600
        )
        self.readers: dict[int, bytes] = {}
        self.dropped: list[int] = []  # closed here, for the supervisor to stop watching
        self.notes: list[str] = []
        self.stop_reason: str | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self.pid = 0
        self.code: int | None = None
        now = time.monotonic()
        self.grace = float(request.get("grace", 5.0))
        self.deadline = now + float(request["timeout"])
        self.fence_every = max(float(request.get("fence_after") or 0) / 6, 0.05)
        self.next_fence = now
        self.kill_at: float | None = None
        self.drain_until: float | None = None
        self.end_until: float | None = None
        self.status: dict[str, Any] | None = None

    # -- start --------------------------------------------------------------------------

    def start(self) -> bool:
        """Spawn the handler; ``False`` (and a saved status) if it could not start."""
        req = self.req
        pipes = [os.pipe() for _ in range(3 if req.get("control") else 2)]
        env = dict(req["env"])
        if len(pipes) == 3:
            env[req["control_var"]] = str(pipes[2][1])
        cgroup = self.cgroup.path if self.cgroup is not None else None
        launch = Launch.of(req, env, cgroup)
        try:
            control = pipes[2][1] if len(pipes) == 3 else None
            started = spawn(launch, pipes[0][1], pipes[1][1], control, self.helper)
        except (OSError, ValueError) as exc:  # ValueError: a NUL in an argument
            for read_end, _ in pipes:
                os.close(read_end)
            self._failed(exc.strerror if isinstance(exc, OSError) else str(exc))
            return False
        finally:
            for _, write_end in pipes:
                os.close(write_end)
        self.pid, self.proc, self.pending = started.pid, started.proc, started.pending
        kinds = (frames.STDOUT, frames.STDERR, frames.CONTROL)
        self.readers = {read_end: kinds[i] for i, (read_end, _) in enumerate(pipes)}
        for fd in self.readers:
            os.set_blocking(fd, False)
        frames.identify(self.folder, *self.hub_id)
        if self.pending >= 0:
            self.readers[self.pending] = _PENDING
        else:
            self._spawned(0)
        return True

    def _learn(self) -> None:
        """Whether the helper's handler runs (the supervisor then says so), or why not."""
        if self.pending < 0 or self.spawn_errno is not None:
            return
        found = spawn_error(self.pending)
        if found is not None:
            self._spawned(found)

    def _spawned(self, errno: int) -> None:
        self.spawn_errno = errno
        if not errno:
            spawned = {"pid": self.pid, "supervisor": self.hub_id[0]}
            self.record(frames.SPAWNED, json.dumps(spawned).encode())

    # -- output -------------------------------------------------------------------------

    def record(self, kind: bytes, payload: bytes) -> None:
        data = frames.frame(kind, payload)
        if self.file_room >= len(data):
            self.file_room -= len(data)
            try:
                os.write(self.output, data)
            except OSError as exc:  # a full disk: the task goes on, its daemon still hears
                self.file_room = -1
                self.notes.append(f"its output could not be saved: {exc.strerror}")
        elif self.file_room >= 0:
            self.file_room = -1
            self.notes.append("output beyond the attempt's file limit was not saved")
        if self.conn is not None:
            self.unsent += data
            self.send()

    def send(self) -> None:
        if self.conn is None or not self.unsent:
            return
        try:
            sent = self.conn.send(self.unsent)
        except BlockingIOError:
            return
        except OSError:
            self.lost_daemon()
            return
        del self.unsent[:sent]

    def lost_daemon(self) -> None:
        # The daemon died: the folder keeps everything for the one that comes next.
        if self.conn is not None:
            self.conn.close()
        self.conn = None
        self.unsent.clear()

    def peer_readable(self) -> None:
        assert self.conn is not None
        try:
            if not self.conn.recv(1):
                self.lost_daemon()
        except BlockingIOError:
            pass
        except OSError:
            self.lost_daemon()

    def readable(self, fd: int) -> bool:
        """Read a pipe; ``False`` once it is closed (unregister it)."""
        # Output means the handler runs: its start is told first, as it happened.
        self._learn()
        if fd == self.pending:
            if self.spawn_errno is None:
                return True
            os.close(fd)
            del self.readers[fd]
            self.pending = -1
            return False
        try:
            data = os.read(fd, READ_BYTES)
        except BlockingIOError:
            return True
        except OSError:
            data = b""  # as closed
        if data:
            self.record(self.readers[fd], data)
            return True
        os.close(fd)
        del self.readers[fd]
        return False

    @property
    def reading(self) -> bool:
        return len(self.unsent) < MAX_UNSENT

    # -- the handler --------------------------------------------------------------------

    def signal_all(self, sig: int, *, cgroup: bool = True) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)
        if self.cgroup is not None and cgroup:
            if sig == signal.SIGKILL:
                self.cgroup.kill()
            else:
                self.cgroup.signal(sig)

    def stop(self, reason: str) -> None:
        if self.stop_reason is not None or self.code is not None:
            return
        self.stop_reason = reason
        self.signal_all(signal.SIGTERM)
        self.kill_at = time.monotonic() + self.grace

    def stop_requested(self) -> None:
        """The daemon asked (a file in the folder, then a signal to the supervisor)."""
        for reason in ("cancel", "shutdown"):
            if (self.folder / f"{STOP_FILE}-{reason}").exists():
                self.stop(reason)

    def _lease_late(self) -> bool:
        path, limit = self.req.get("lease_file"), self.req.get("fence_after")
        if not path or not limit:
            return False
        renewed = frames.read_lease(Path(path))
        return renewed is None or time.monotonic() - renewed > float(limit)

    @property
    def _keep_services(self) -> bool:
        return bool(self.req.get("services")) and self.stop_reason is None

    def reaped(self, code: int) -> None:
        self._learn()  # the helper is gone: its pipe has said all it will
        self.code = code
        if self.proc is not None:
            self.proc.returncode = code  # reaped by the supervisor, not by Popen
        # Descendants may hold the pipes or run on: end the whole tree, except services
        # a platform operation left after a normal exit.
        self.signal_all(signal.SIGKILL, cgroup=not self._keep_services)
        self.drain_until = time.monotonic() + DRAIN_SECONDS

    def tick(self, now: float) -> float:
        """Act on the timers; return when next to be called (``0``: finished)."""
        if self.status is not None:
            return 0.0
        if self.code is None:
            if now >= self.deadline:
                self.stop("timeout")
            if self.stop_reason is None and now >= self.next_fence:
                self.next_fence = now + self.fence_every
                if self._lease_late():
                    self.stop("fenced")
            if self.kill_at is not None and now >= self.kill_at:
                self.signal_all(signal.SIGKILL)
                self.kill_at = now + 1.0
            timers = [self.deadline, self.next_fence, self.kill_at or self.deadline]
            return min(timers)
        if self.readers and now < (self.drain_until or 0):
            return self.drain_until or now
        return self._ending(now)

    def _ending(self, now: float) -> float:
        self.dropped += self.readers
        for fd in list(self.readers):
            os.close(fd)
        self.readers.clear()
        self.pending = -1
        if self.cgroup is not None:
            if self.end_until is None:
                self.end_until = now + END_SECONDS
                usage = self.cgroup.usage()
                if usage.cpu_seconds is not None:
                    self.notes.append(usage.describe())
                if self._keep_services:
                    release_into(self.cgroup, Path(self.req["services"]))
            if self.cgroup.path.exists() and self.cgroup.populated():
                if now < self.end_until:
                    self.cgroup.kill()
                    return now + 0.01
                self.notes.append(f"processes of {self.cgroup.path} did not end in time")
            else:
                with contextlib.suppress(OSError):
                    self.cgroup.path.rmdir()
        if self.spawn_errno:
            self._failed(os.strerror(self.spawn_errno))
            return 0.0
        self._save(
            {
                "reason": self.stop_reason or "exited",
                "exit_code": self.code,
                "notes": self.notes,
                "program": self.req["argv"][0],
                "timeout": self.req["timeout"],
            }
        )
        return 0.0

    def _failed(self, error: str | None) -> None:
        self._save({"reason": "spawn_failed", "error": error, "program": self.req["argv"][0]})

    def _save(self, status: dict[str, Any]) -> None:
        self.status = status
        os.close(self.output)
        with contextlib.suppress(OSError):  # the daemon, if there, still hears it
            frames.write_json(self.folder / frames.STATUS, status)
        if self.conn is not None:
            self.conn.settimeout(5.0)
            with contextlib.suppress(OSError):
                self.conn.sendall(bytes(self.unsent) + frames.json_frame(frames.EXITED, status))
            self.conn.close()
            self.conn = None
