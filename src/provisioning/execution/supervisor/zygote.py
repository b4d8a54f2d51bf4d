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
import gc
import os
import selectors
import signal
import socket
import sys
from pathlib import Path

from . import frames
from .attempt import supervise

LOCK = "supervisor.lock"
# Supervisors forked ahead, each waiting for the next attempt.
SPARES = 2


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
    notify_r, notify_w = os.pipe2(os.O_CLOEXEC)
    # Objects that exist now are never collected: the collector would otherwise touch,
    # and so copy, every page a fork shares with this process.
    gc.freeze()
    for _ in range(SPARES):
        _fork_spare(listener, notify_r, notify_w, daemon, lock)
    sel = selectors.DefaultSelector()
    sel.register(notify_r, selectors.EVENT_READ)
    sel.register(daemon, selectors.EVENT_READ)
    while True:
        for key, _ in sel.select():
            if key.fileobj == daemon:
                # The daemon is gone (a new one starts its own supervisor): end the idle
                # spares, which share this process group; the busy ones left it.
                signal.signal(signal.SIGTERM, signal.SIG_IGN)
                os.killpg(0, signal.SIGTERM)
                return 0
            for _ in os.read(notify_r, 64):
                _fork_spare(listener, notify_r, notify_w, daemon, lock)


def _fork_spare(listener: socket.socket, *fds: int) -> None:
    """A forked supervisor that waits for one request: forking off the request's path
    keeps the interpreter's copy-on-write faults out of every task's start."""
    if os.fork() != 0:
        return
    notify_w = fds[1]
    for fd in fds:
        if fd != notify_w:
            os.close(fd)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    while True:
        try:
            conn, _ = listener.accept()
            break
        except OSError:
            continue
    os.write(notify_w, b"1")
    os.close(notify_w)
    listener.close()
    supervise(conn)


def main() -> None:
    sys.exit(serve(Path(sys.argv[1]), int(sys.argv[2])))
