"""The supervisor of a data dir: one small process that runs every attempt's handler
(in the manner of containerd's shim or conmon, for all of them at once).

Started by the daemon in a session of its own, so a kill -9 of the daemon leaves it,
and every task, running. One ``select`` loop, no threads and no forks of its own: a
handler is started with vfork and exec, so supervising costs a task little more
than spawning it. It serves whichever daemon runs on its data dir now (a restarted
one finds it still there) and leaves once that daemon is gone and no attempt is left.

Signals: SIGUSR1, look for stop requests in the attempts' folders; SIGTERM or
SIGUSR2, stop every attempt (handed back) and leave.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import select
import selectors
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

from ..procfs import start_ticks
from . import frames
from .attempt import Attempt
from .child import helper

LOCK = "supervisor.lock"
_LISTEN, _WAKE, _DAEMON, _REQUEST, _PIPE, _PEER = range(6)


class Hub:
    def __init__(self, listener: socket.socket, daemon_pid: int) -> None:
        self.sel = selectors.DefaultSelector()
        self.listener = listener
        self.daemon_pid = 0
        self.daemon_fd = -1
        self.daemon_gone = False
        self.by_pid: dict[int, Attempt] = {}
        self.attempts: list[Attempt] = []
        self.requests: dict[socket.socket, bytearray] = {}
        self.signals: list[int] = []
        self.leaving = False
        self.me = (os.getpid(), start_ticks(os.getpid()))
        self.helper = helper()
        with contextlib.suppress(OSError):  # each attempt then writes its own copy
            frames.write_json(Path(frames.HUB_ID), {"pid": self.me[0], "start_ticks": self.me[1]})
        wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(wake_w)
        for sig in (signal.SIGCHLD, signal.SIGUSR1, signal.SIGUSR2, signal.SIGTERM):
            signal.signal(sig, lambda sig, _: self.signals.append(sig))
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
        self.sel.register(wake_r, selectors.EVENT_READ, (_WAKE, None))
        self.sel.register(listener, selectors.EVENT_READ, (_LISTEN, None))
        self._serve(daemon_pid)

    def _serve(self, daemon_pid: int) -> None:
        """Follow the life of the daemon that sends the requests now."""
        if daemon_pid == self.daemon_pid:
            return
        if self.daemon_fd >= 0:
            with contextlib.suppress(KeyError):
                self.sel.unregister(self.daemon_fd)
            os.close(self.daemon_fd)
            self.daemon_fd = -1
        self.daemon_pid = daemon_pid
        try:
            self.daemon_fd = os.pidfd_open(daemon_pid)
        except ProcessLookupError:
            self.daemon_gone = True
            return
        self.daemon_gone = False
        self.sel.register(self.daemon_fd, selectors.EVENT_READ, (_DAEMON, None))

    def _exited(self, pid: int) -> bool:
        """``pid`` has exited, zombie or not (its pidfd is readable then), even if the
        selector has not said so yet of the daemon followed."""
        if pid == self.daemon_pid and self.daemon_fd >= 0:
            return bool(select.select([self.daemon_fd], [], [], 0)[0])
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            return True
        try:
            return bool(select.select([fd], [], [], 0)[0])
        finally:
            os.close(fd)

    def run(self) -> int:
        while True:
            now = time.monotonic()
            wait = 1.0
            for attempt in list(self.attempts):
                try:
                    due = attempt.tick(now)
                except Exception as exc:  # one attempt's trouble must not end the others'
                    due = now + 0.1
                    print(
                        f"provisioning supervisor: {attempt.folder.name}: {exc!r}", file=sys.stderr
                    )
                while attempt.dropped:  # before any new descriptor can take the number
                    key = self.sel.get_map().get(attempt.dropped.pop())
                    if key is not None and key.data[1] is attempt:
                        self.sel.unregister(key.fd)
                if attempt.status is not None:
                    self._forget(attempt)
                else:
                    wait = min(wait, due - now)
                    self._watch_io(attempt)
            if (self.daemon_gone or self.leaving) and not self.attempts and not self.requests:
                return 0
            for key, mask in self.sel.select(max(wait, 0.0)):
                # A descriptor closed here while a just-spawned child still held it
                # (posix_spawn returns before the exec closes the child's copies) may
                # stay in epoll a moment: its events come under the number a new one
                # now has, even twice in one batch. So every handler below tolerates a
                # wake-up with nothing to read, and one gone is skipped.
                if self.sel.get_map().get(key.fd) is not key:
                    continue
                kind, owner = key.data
                if kind == _PIPE:
                    if not owner.readable(key.fd):
                        self.sel.unregister(key.fd)
                elif kind == _PEER:
                    if mask & selectors.EVENT_WRITE:
                        owner.send()
                    if mask & selectors.EVENT_READ and owner.conn is not None:
                        owner.peer_readable()
                    if owner.conn is None:
                        self.sel.unregister(key.fileobj)
                elif kind == _REQUEST:
                    self._read_request(key.fileobj)
                elif kind == _LISTEN:
                    self._accept()
                elif kind == _WAKE:
                    with contextlib.suppress(BlockingIOError):
                        os.read(key.fd, 512)
                    self._on_signals()
                elif kind == _DAEMON and select.select([key.fd], [], [], 0)[0]:
                    self.sel.unregister(key.fd)
                    self.daemon_gone = True

    def _watch_io(self, attempt: Attempt) -> None:
        for fd in attempt.readers:
            registered = fd in self.sel.get_map()
            if attempt.reading and not registered:
                self.sel.register(fd, selectors.EVENT_READ, (_PIPE, attempt))
            elif not attempt.reading and registered:
                self.sel.unregister(fd)
        if attempt.conn is not None:
            events = selectors.EVENT_READ | (selectors.EVENT_WRITE if attempt.unsent else 0)
            if attempt.conn in self.sel.get_map():
                self.sel.modify(attempt.conn, events, (_PEER, attempt))
            else:
                self.sel.register(attempt.conn, events, (_PEER, attempt))

    def _forget(self, attempt: Attempt) -> None:
        self.attempts.remove(attempt)
        self.by_pid.pop(attempt.pid, None)
        for fd in list(self.sel.get_map()):
            data = self.sel.get_map()[fd].data
            if data[1] is attempt:
                self.sel.unregister(fd)

    def _on_signals(self) -> None:
        while self.signals:
            sig = self.signals.pop()
            if sig == signal.SIGCHLD:
                self._reap()
            elif sig == signal.SIGUSR1:
                for attempt in self.attempts:
                    attempt.stop_requested()
            else:
                self.leaving = True
                for attempt in self.attempts:
                    attempt.stop("shutdown")

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if not pid:
                return
            attempt = self.by_pid.get(pid)
            if attempt is not None:
                attempt.reaped(os.waitstatus_to_exitcode(status))

    def _accept(self) -> None:
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return
        creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12)
        if int.from_bytes(creds[4:8], "little") != os.getuid():
            conn.close()  # only the daemon's own user may ask
            return
        conn.setblocking(False)
        self.requests[conn] = bytearray()
        self.sel.register(conn, selectors.EVENT_READ, (_REQUEST, None))

    def _read_request(self, conn: Any) -> None:
        buffer = self.requests[conn]
        try:
            chunk = conn.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        buffer += chunk
        found = frames.split_frames(buffer)
        if not chunk or found:
            self.sel.unregister(conn)
            del self.requests[conn]
        if not found:
            if not chunk:
                conn.close()
            return
        kind, payload = found[0]
        try:
            request = json.loads(payload)
            assert kind == frames.REQUEST and isinstance(request, dict)
            asker = int(request["daemon_pid"])
            # Its daemon died after asking, before this was read (a kill -9 right after a
            # claim): the next daemon finds no attempt folder, records the attempt lost
            # and runs the task again. Started now, it would run twice; and the daemon
            # followed stays the one that asked last and lives.
            attempt = None
            if not self._exited(asker):
                self._serve(asker)
                attempt = Attempt(conn, request, self.me, self.helper)
        except Exception as exc:  # a bad request must not end the others' supervisor
            print(f"provisioning supervisor: bad request: {exc!r}", file=sys.stderr)
            attempt = None
        if attempt is None:
            conn.close()
            return
        if attempt.start():
            self.attempts.append(attempt)
            self.by_pid[attempt.pid] = attempt
            self._reap()  # it may have exited before it was known by its pid


def serve(data_dir: Path, daemon_pid: int) -> int:
    # What the daemon left open must not reach the handlers (they are spawned without
    # closing every descriptor; the supervisor's own are close-on-exec).
    try:
        inherited = [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:
        inherited = list(range(3, 1024))
    for fd in inherited:
        if fd > 2:
            with contextlib.suppress(OSError):
                os.close(fd)
    os.umask(0o077)
    os.chdir(data_dir)  # bind a short relative name: socket paths are limited to 108 bytes
    lock = os.open(LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    # The supervisor of an earlier daemon may still be leaving: wait for its lock.
    fcntl.flock(lock, fcntl.LOCK_EX)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(frames.SOCKET)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(frames.SOCKET)
    listener.listen(512)
    listener.setblocking(False)
    return Hub(listener, daemon_pid).run()


def main() -> None:
    sys.exit(serve(Path(sys.argv[1]), int(sys.argv[2])))
