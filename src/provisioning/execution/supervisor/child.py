"""Start a handler from its supervisor, born inside the attempt's cgroup.

The supervisor steps into the attempt's cgroup, spawns the handler (vfork and exec:
far cheaper than forking an interpreter) and steps back out, so every descendant
of the handler is in the group from its first instruction, with no wrapper shell
waiting for the daemon to move it. Descriptors are close-on-exec except stdin,
stdout, stderr and the control pipe.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path


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


def spawn(launch: Launch, stdout: int, stderr: int, control: int | None) -> subprocess.Popen[bytes]:
    """The handler, running its program; ``OSError`` if it could not start."""
    as_user = launch.uid is not None and launch.gid is not None
    with _inside(launch.cgroup):
        return subprocess.Popen(
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
