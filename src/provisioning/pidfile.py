"""The orchestrator's pid file, held under an exclusive lock while it lives.

Shared by the daemon (which holds it) and the CLI (which reads it to stop the
daemon): a lock, unlike a bare pid, cannot go stale after a crash.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path


class PidFileBusy(Exception):
    """Another live process holds the pid file."""

    def __init__(self, pid: str) -> None:
        super().__init__(pid)
        self.pid = pid


class PidFile:
    """The pid file, locked while this process lives."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = os.read(fd, 32).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise PidFileBusy(other) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        os.fsync(fd)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                self.path.unlink()
            os.close(self._fd)
            self._fd = None


def read_pid(data_dir: Path, name: str = "orchestrator.pid") -> int | None:
    """The pid of the live process holding ``data_dir/name``, if one does."""
    path = data_dir / name
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            # From the descriptor, not the path: the holder removes the file as it
            # exits, and may have done so since it was opened (it is still the same pid).
            text = os.pread(fd, 64, 0).decode(errors="replace").strip()
            return int(text) if text.isdigit() else None
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None  # A stale file: nobody holds the lock.
    finally:
        os.close(fd)
