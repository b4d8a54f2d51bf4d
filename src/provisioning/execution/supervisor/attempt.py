"""One attempt's supervisor: runs the handler, keeps its output and exit status in
the attempt's folder, streams both to the daemon while the daemon is there, and
enforces the attempt's limits itself (timeout, stop requests, the node's lease),
so a daemon that died leaves nothing unsupervised.

Stop requests are signals: SIGUSR1 cancels, SIGUSR2 (or SIGTERM) hands the attempt
back (orchestrator shutdown). Single-threaded; one ``select`` loop.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from ..cgroups import TaskCgroup, release_into
from ..procfs import start_ticks
from . import frames
from .child import Launch, spawn

DRAIN_SECONDS = 2.0
READ_BYTES = 65536
# Past this much unsent output the handler's pipes are not read (back-pressure) while
# the timers still run: a stalled daemon must not stall the self-fence.
MAX_UNSENT = 1 << 20
_STOPS: dict[int, str] = {
    signal.SIGUSR1: "cancel",
    signal.SIGUSR2: "shutdown",
    signal.SIGTERM: "shutdown",
}


class _Attempt:
    def __init__(self, conn: socket.socket | None, request: dict[str, Any]) -> None:
        self.conn = conn
        self.req = request
        self.folder = Path(request["dir"])
        self.cgroup = TaskCgroup(Path(request["cgroup"])) if request.get("cgroup") else None
        self.unsent = bytearray()
        self.file_room = int(request.get("file_bytes", 64 << 20))
        self.output = os.open(
            self.folder / frames.OUTPUT, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600
        )
        self.sel = selectors.DefaultSelector()
        self.signals: list[int] = []
        self.notes: list[str] = []
        self.stop_reason: str | None = None
        self.pid = 0
        self.proc: subprocess.Popen[bytes] | None = None

    # -- output -------------------------------------------------------------------------

    def record(self, kind: bytes, payload: bytes) -> None:
        data = frames.frame(kind, payload)
        if self.file_room >= len(data):
            self.file_room -= len(data)
            os.write(self.output, data)
        elif self.file_room >= 0:
            self.file_room = -1
            self.notes.append("output beyond the attempt's file limit was not saved")
        if self.conn is not None:
            self.unsent += data
            self._send()

    def _send(self) -> None:
        if self.conn is None or not self.unsent:
            return
        try:
            sent = self.conn.send(self.unsent)
        except BlockingIOError:
            sent = 0
        except OSError:
            self._lost_daemon()
            return
        del self.unsent[:sent]

    def _lost_daemon(self) -> None:
        # The daemon died: the folder keeps everything for the one that comes next.
        if self.conn is not None:
            with contextlib.suppress(KeyError, ValueError):
                self.sel.unregister(self.conn)
            self.conn.close()
        self.conn = None
        self.unsent.clear()

    # -- the handler --------------------------------------------------------------------

    def signal_all(self, sig: int, *, cgroup: bool = True) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)
        if self.cgroup is not None and cgroup:
            if sig == signal.SIGKILL:
                self.cgroup.kill()
            else:
                self.cgroup.signal(sig)

    def stop(self, reason: str, grace: float) -> float:
        if self.stop_reason is None:
            self.stop_reason = reason
        self.signal_all(signal.SIGTERM)
        return time.monotonic() + grace

    def lease_late(self) -> bool:
        path, limit = self.req.get("lease_file"), self.req.get("fence_after")
        if not path or not limit:
            return False
        renewed = frames.read_lease(Path(path))
        return renewed is None or time.monotonic() - renewed > float(limit)

    def run(self) -> dict[str, Any]:
        req = self.req
        pipes = [os.pipe() for _ in range(3 if req.get("control") else 2)]
        env = dict(req["env"])
        if len(pipes) == 3:
            env[req["control_var"]] = str(pipes[2][1])
        launch = Launch(
            argv=req["argv"],
            env=env,
            executable=req.get("executable"),
            cwd=req.get("cwd"),
            cgroup=self.cgroup.path if self.cgroup is not None else None,
            uid=req.get("uid"),
            gid=req.get("gid"),
            umask=int(req.get("umask", -1)),
        )
        try:
            self.proc = spawn(
                launch, pipes[0][1], pipes[1][1], pipes[2][1] if req.get("control") else None
            )
            self.pid = self.proc.pid
        except OSError as exc:
            return {"reason": "spawn_failed", "error": exc.strerror, "program": req["argv"][0]}
        finally:
            for _, write_end in pipes:
                os.close(write_end)
        frames.write_json(
            self.folder / frames.SUPERVISOR,
            {"pid": os.getpid(), "start_ticks": start_ticks(os.getpid()), "handler": self.pid},
        )
        self.record(
            frames.SPAWNED, json.dumps({"pid": self.pid, "supervisor": os.getpid()}).encode()
        )
        kinds = [frames.STDOUT, frames.STDERR, frames.CONTROL]
        readers = {read_end: kinds[i] for i, (read_end, _) in enumerate(pipes)}
        return self._watch(readers)

    def _watch(self, readers: dict[int, bytes]) -> dict[str, Any]:
        req = self.req
        grace = float(req.get("grace", 5.0))
        now = time.monotonic()
        deadline = now + float(req["timeout"])
        fence_every = max(float(req.get("fence_after") or 0) / 6, 0.05)
        next_fence = now
        kill_at: float | None = None
        drain_until: float | None = None
        code: int | None = None
        reading = False
        if self.conn is not None:
            self.sel.register(self.conn, selectors.EVENT_READ)
        while True:
            now = time.monotonic()
            while self.signals:
                kill_at = kill_at or self.stop(_STOPS[self.signals.pop()], grace)
            if self.stop_reason is None and now >= deadline:
                kill_at = self.stop("timeout", grace)
            if self.stop_reason is None and now >= next_fence:
                next_fence = now + fence_every
                if self.lease_late():
                    kill_at = self.stop("fenced", grace)
            if code is None and kill_at is not None and now >= kill_at:
                self.signal_all(signal.SIGKILL)
                kill_at = now + 3600
            if code is None:
                done, status = os.waitpid(self.pid, os.WNOHANG)
                if done:
                    code = os.waitstatus_to_exitcode(status)
                    if self.proc is not None:
                        self.proc.returncode = code  # reaped here, not by Popen
                    # Descendants may hold the pipes or run on: end the whole tree,
                    # except services a platform operation left after a normal exit.
                    keep = bool(req.get("services")) and self.stop_reason is None
                    self.signal_all(signal.SIGKILL, cgroup=not keep)
                    drain_until = now + DRAIN_SECONDS
            if code is not None and (not readers or (drain_until or 0) <= now):
                break
            want_read = len(self.unsent) < MAX_UNSENT
            if want_read != reading:
                for fd in readers:
                    if want_read:
                        self.sel.register(fd, selectors.EVENT_READ)
                    else:
                        self.sel.unregister(fd)
                reading = want_read
            if self.conn is not None:
                events = selectors.EVENT_READ | (selectors.EVENT_WRITE if self.unsent else 0)
                self.sel.modify(self.conn, events)
            timers = [deadline, next_fence, kill_at or deadline, drain_until or deadline]
            wait = max(min(min(timers) - now, 1.0), 0.0) if code is None else 0.05
            for key, mask in self.sel.select(wait):
                if key.fileobj is self.conn:
                    if mask & selectors.EVENT_WRITE:
                        self._send()
                    if mask & selectors.EVENT_READ and self.conn is not None:
                        self._peer_closed()
                    continue
                fd = int(key.fd)
                if fd == self._wake:
                    with contextlib.suppress(BlockingIOError):
                        os.read(fd, 512)
                    continue
                data = os.read(fd, READ_BYTES)
                if data:
                    self.record(readers[fd], data)
                else:
                    self.sel.unregister(fd)
                    os.close(fd)
                    del readers[fd]
        return self._ended(code)

    _wake = -1

    def _peer_closed(self) -> None:
        assert self.conn is not None
        try:
            if not self.conn.recv(1):
                self._lost_daemon()
        except BlockingIOError:
            pass
        except OSError:
            self._lost_daemon()

    def _ended(self, code: int | None) -> dict[str, Any]:
        keep = bool(self.req.get("services")) and self.stop_reason is None
        if self.cgroup is not None:
            usage = self.cgroup.usage()
            if keep:
                release_into(self.cgroup, Path(self.req["services"]))
            elif not self.cgroup.end():
                self.notes.append(f"processes of {self.cgroup.path} did not end in time")
            if usage.cpu_seconds is not None:
                self.notes.append(usage.describe())
        return {
            "reason": self.stop_reason or "exited",
            "exit_code": code,
            "notes": self.notes,
            "program": self.req["argv"][0],
            "timeout": self.req["timeout"],
        }


def supervise(conn: socket.socket) -> None:
    """The body of a forked attempt supervisor; never returns."""
    code = 1
    try:
        os.setsid()
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
        request = _read_request(conn)
        folder = Path(request["dir"])
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        attempt = _Attempt(conn, request)
        wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(wake_w)
        attempt._wake = wake_r
        attempt.sel.register(wake_r, selectors.EVENT_READ)
        for sig in _STOPS:
            signal.signal(sig, lambda sig, _: attempt.signals.append(sig))
        conn.setblocking(False)
        status = attempt.run()
        frames.write_json(folder / frames.STATUS, status)
        if attempt.conn is not None:
            attempt.conn.settimeout(5.0)
            with contextlib.suppress(OSError):
                attempt.conn.sendall(
                    bytes(attempt.unsent) + frames.json_frame(frames.EXITED, status)
                )
        code = 0
    finally:
        os._exit(code)


def _peer_is_us(conn: socket.socket) -> bool:
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12)
    return int.from_bytes(creds[4:8], "little") == os.getuid()


def _read_request(conn: socket.socket) -> dict[str, Any]:
    if not _peer_is_us(conn):
        raise PermissionError("a request from another user")
    conn.settimeout(10.0)
    buffer = bytearray()
    while True:
        chunk = conn.recv(65536)
        if not chunk:
            raise EOFError("the daemon left before saying what to run")
        buffer += chunk
        found = frames.split_frames(buffer)
        if found:
            kind, payload = found[0]
            if kind != frames.REQUEST:
                raise ValueError("not a request")
            value = json.loads(payload)
            assert isinstance(value, dict)
            return value
