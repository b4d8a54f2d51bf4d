"""The supervisor of a data dir: forks one attempt supervisor per request.

Started by the daemon, in a session of its own, so a kill -9 of the daemon leaves
it and every attempt supervisor alive. It lives as long as its daemon (it watches
the daemon's pidfd); the attempt supervisors it forked outlive it, each until its
task ended. Forking a small, already-started interpreter costs far less than
starting one per task.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import selectors
import signal
import socket
import sys
from pathlib import Path

from . import frames
from .attempt import supervise

LOCK = "supervisor.lock"


def serve(data_dir: Path, daemon_pid: int) -> int:
    os.umask(0o077)
    try:
        daemon = os.pidfd_open(daemon_pid)
    except ProcessLookupError:
        return 0
    os.chdir(data_dir)  # bind a short relative name: socket paths are limited to 108 bytes
    lock = os.open(LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    # A supervisor of an earlier daemon may still be leaving: wait for its lock.
    fcntl.flock(lock, fcntl.LOCK_EX)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(frames.SOCKET)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(frames.SOCKET)
    listener.listen(512)
    # Attempt supervisors are reaped by the kernel; they report through their folder.
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    sel = selectors.DefaultSelector()
    sel.register(listener, selectors.EVENT_READ)
    sel.register(daemon, selectors.EVENT_READ)
    while True:
        for key, _ in sel.select():
            if key.fileobj is not listener:
                return 0  # the daemon is gone; a new one starts its own supervisor
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            if os.fork() == 0:
                listener.close()
                os.close(daemon)
                os.close(lock)
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                supervise(conn)
            conn.close()


def main() -> None:
    sys.exit(serve(Path(sys.argv[1]), int(sys.argv[2])))
