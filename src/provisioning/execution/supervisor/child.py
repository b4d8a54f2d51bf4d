"""Start a handler from its supervisor: fork, enter the attempt's cgroup, then exec.

The handler child writes its own pid into the cgroup before it execs, so every
descendant is born inside the group (no wrapper shell waiting for the daemon to
move it). Every descriptor we open is close-on-exec (PEP 446); only stdin, stdout,
stderr and the control pipe (fd 3) reach the handler.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

CONTROL_FD = 3
_RESET = (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGCHLD, signal.SIGTERM)


@dataclass(frozen=True)
class Launch:
    argv: Sequence[str]
    env: Mapping[str, str]
    executable: str | None = None
    cwd: str | None = None
    cgroup_procs: str | None = None
    uid: int | None = None
    gid: int | None = None
    umask: int = -1


def _become_handler(launch: Launch, stdout: int, stderr: int, control: int | None) -> None:
    if launch.cgroup_procs is not None:
        # A failure leaves the handler in the supervisor's cgroup: the process group
        # still ends it, as where cgroups cannot be had.
        try:
            fd = os.open(launch.cgroup_procs, os.O_WRONLY)
            try:
                os.write(fd, b"0\n")  # 0: the writing process itself
            finally:
                os.close(fd)
        except OSError:
            pass
    os.setsid()
    for sig in _RESET:
        signal.signal(sig, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    if launch.umask >= 0:
        os.umask(launch.umask)
    if launch.uid is not None and launch.gid is not None:
        os.setgroups([])
        os.setgid(launch.gid)
        os.setuid(launch.uid)
    if launch.cwd is not None:
        os.chdir(launch.cwd)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(stdout, 1)
    os.dup2(stderr, 2)
    if control == CONTROL_FD:
        os.set_inheritable(control, True)  # dup2 onto itself would keep close-on-exec
    elif control is not None:
        os.dup2(control, CONTROL_FD)
    argv = list(launch.argv)
    if launch.executable is not None:
        os.execve(launch.executable, argv, dict(launch.env))
    os.execvpe(argv[0], argv, dict(launch.env))


def spawn(launch: Launch, stdout: int, stderr: int, control: int | None) -> int:
    """The handler's pid once it runs its program; ``OSError`` if it could not."""
    report_r, report_w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:
        try:
            _become_handler(launch, stdout, stderr, control)
        except OSError as exc:
            os.write(report_w, str(exc.errno or 0).encode())
        except BaseException:
            os.write(report_w, b"0")
        os._exit(127)
    os.close(report_w)
    with os.fdopen(report_r, "rb") as report:
        failed = report.read()  # EOF at the exec: the pipe closed on it
    if failed:
        os.waitpid(pid, 0)
        code = int(failed or b"0")
        raise OSError(code, os.strerror(code) if code else "cannot start")
    return pid
