"""Start a handler from its supervisor, born inside the attempt's cgroup.

Two ways, the same guarantees (own session and process group, default signal
dispositions, every descendant in the group from its first instruction, only stdin,
stdout, stderr and the control pipe inherited):

- the ``provisioning-spawn`` helper (``spawn.c``, built by ``scripts/setup.sh`` next to
  the interpreter), started with ``posix_spawn``: it clones the handler into the cgroup
  (``CLONE_INTO_CGROUP``) and stays as its parent, ending as it ended, so nothing waits
  for a cgroup move (an RCU grace period each: 15-20 ms after an idle moment, on every
  task of a chain). Where the kernel cannot clone into a cgroup it joins the group and
  becomes the handler. Whether the handler started is learnt later, from the helper's
  error pipe (:attr:`Started.pending`);
- without the helper, the supervisor steps into the cgroup, spawns with ``subprocess``
  (vfork and exec) and steps back out.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HELPER = "provisioning-spawn"
_ERRNO_BYTES = 4
# What Popen(restore_signals=True) resets; the supervisor itself ignores SIGPIPE.
_DEFAULT_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGPIPE", "SIGXFZ", "SIGXFSZ") if hasattr(signal, name)
)


@dataclass(frozen=True)
class Launch:
    argv: Sequence[str]
    env: Mapping[str, str]
    executable: str | None = None
    cwd: str | None = None
    cgroup: Path | None = None
    uid: int | None = None
    gid: int | None = None
    umask: int = -1

    @classmethod
    def of(cls, req: Mapping[str, Any], env: Mapping[str, str], cgroup: Path | None) -> Launch:
        """What a request (see ``request_for``) runs, with ``env`` for its environment."""
        return cls(
            argv=req["argv"],
            env=env,
            executable=req.get("executable"),
            cwd=req.get("cwd"),
            cgroup=cgroup,
            uid=req.get("uid"),
            gid=req.get("gid"),
            umask=int(req.get("umask", -1)),
        )


@dataclass(frozen=True)
class Started:
    pid: int
    # Through the helper: the read end of its error pipe (an errno, or end-of-file once
    # the handler runs); -1 when the handler is known to run.
    pending: int = -1
    proc: subprocess.Popen[bytes] | None = None


def helper() -> str | None:
    path = os.path.join(os.path.dirname(sys.executable), HELPER)
    return path if os.access(path, os.X_OK) else None


def _join(group: Path) -> bool:
    try:
        (group / "cgroup.procs").write_text("0\n")  # 0: the writing process
    except OSError:
        return False
    return True


@contextlib.contextmanager
def _inside(group: Path | None) -> Iterator[None]:
    """In ``group`` for the block, then back in the supervisor's own cgroup (the
    daemon's, two levels up). If the group cannot be joined the handler runs without
    it: its process group still ends it, as where cgroups cannot be had."""
    joined = group is not None and _join(group)
    try:
        yield
    finally:
        if joined and group is not None:
            _join(group.parent.parent)


def spawn(
    launch: Launch, stdout: int, stderr: int, control: int | None, via: str | None
) -> Started:
    """The handler (or the helper becoming it, ``via`` its path); ``OSError`` if it
    could not start, ``ValueError`` for a NUL in an argument or the environment."""
    if via is not None:
        return _through(via, launch, stdout, stderr, control)
    as_user = launch.uid is not None and launch.gid is not None
    with _inside(launch.cgroup):
        proc = subprocess.Popen(
            list(launch.argv),
            executable=launch.executable,
            env=dict(launch.env),
            cwd=launch.cwd,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            pass_fds=(control,) if control is not None else (),
            start_new_session=True,
            umask=launch.umask,
            user=launch.uid if as_user else None,
            group=launch.gid if as_user else None,
            extra_groups=[] if as_user else None,
        )
    return Started(proc.pid, proc=proc)


def _through(via: str, launch: Launch, stdout: int, stderr: int, control: int | None) -> Started:
    errors, error_end = os.pipe()  # both close-on-exec (PEP 446)
    procs = str(launch.cgroup / "cgroup.procs") if launch.cgroup is not None else ""
    as_user = launch.uid is not None and launch.gid is not None
    uid, gid = (launch.uid, launch.gid) if as_user else (-1, -1)
    argv = [via, str(error_end), procs, launch.cwd or "", str(launch.umask), str(uid), str(gid)]
    argv += [launch.executable or "", *launch.argv]
    inherited = [error_end] if control is None else [error_end, control]
    try:
        # Single-threaded supervisor: nothing else spawns while these are inheritable.
        for fd in inherited:
            os.set_inheritable(fd, True)
        pid = os.posix_spawn(
            via,
            argv,
            launch.env,
            file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                (os.POSIX_SPAWN_DUP2, stdout, 1),
                (os.POSIX_SPAWN_DUP2, stderr, 2),
            ],
            setsid=True,
            setsigdef=_DEFAULT_SIGNALS,
        )
    except (OSError, ValueError):
        os.close(errors)
        raise
    finally:
        os.close(error_end)
        if control is not None:
            os.set_inheritable(control, False)
    os.set_blocking(errors, False)
    return Started(pid, pending=errors)


def spawn_error(pending: int) -> int | None:
    """The errno the helper reported on ``pending``, 0 if the handler runs, ``None``
    if the helper has not got that far yet. Once known, a second read finds the pipe's
    end, which is harmless."""
    try:
        got = os.read(pending, _ERRNO_BYTES)
    except BlockingIOError:
        return None
    except OSError:
        got = b""
    return int.from_bytes(got, sys.byteorder) if len(got) == _ERRNO_BYTES else 0
