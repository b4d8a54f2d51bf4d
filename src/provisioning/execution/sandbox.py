"""What the daemon confines each attempt to: its own cgroup, an unprivileged user
(``executor.run_as`` when the daemon is root), an explicit environment, a control
pipe. Decided once at start, with a line in the log for each limitation."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass

from ..config import Settings
from ..tasks import RunSpec
from .cgroups import Cgroups, TaskCgroup
from .environment import TaskUser, may_leave_services, task_environment
from .process import Confinement

log = logging.getLogger("provisioning.execution")

# Files a task creates (in a workspace, on a server's overlay) get the usual modes,
# not the daemon's private umask.
TASK_UMASK = 0o022
# Empty attempt groups older than this are swept at start (younger ones may belong to
# another orchestrator on this machine that is just moving its handler in).
STALE_GROUP_SECONDS = 60.0


class SandboxError(ValueError):
    """The configuration asks for a confinement this machine cannot give."""


def run_as_user(settings: Settings) -> TaskUser | None:
    """The user tasks run as, or ``None`` (as the daemon); raises :class:`SandboxError`."""
    name = settings.executor.run_as
    if os.geteuid() != 0:
        if name:
            log.warning(
                "executor.run_as = %s is ignored: the orchestrator does not run as root", name
            )
        return None
    if not name:
        log.warning(
            "the orchestrator runs as root and so do its tasks: set executor.run_as to an "
            "unprivileged user"
        )
        return None
    try:
        user = TaskUser.lookup(name)
    except KeyError:
        raise SandboxError(f"executor.run_as: no user {name!r} on this machine") from None
    if user.uid == 0:
        raise SandboxError(f"executor.run_as: {name!r} is root; name an unprivileged user")
    return user


@dataclass
class Sandbox:
    cgroups: Cgroups | None
    user: TaskUser | None
    settings: Settings

    @classmethod
    def from_settings(cls, settings: Settings) -> Sandbox:
        cgroups = Cgroups.discover(settings.executor.memory_max)
        if cgroups is not None:
            cgroups.sweep(older_than=time.time() - STALE_GROUP_SECONDS)
        return cls(cgroups, run_as_user(settings), settings)

    @property
    def cwd(self) -> str | None:
        return self.user.home if self.user and os.path.isdir(self.user.home) else None

    def environment(self, run: RunSpec) -> dict[str, str]:
        return task_environment(run, self.settings.executor.env, user=self.user)

    def confinement(self, attempt_key: str, run: RunSpec) -> Confinement:
        cgroup = None
        if self.cgroups is not None:
            try:
                cgroup = self.cgroups.create(attempt_key)
            except OSError as exc:
                log.warning(
                    "cannot create the cgroup of %s (%s): process group only",
                    attempt_key,
                    exc.strerror,
                )
        release = None
        if self.cgroups is not None and may_leave_services(run):
            release = self.cgroups.release
        return Confinement(cgroup=cgroup, user=self.user, umask=TASK_UMASK, release=release)

    def cgroup_of(self, attempt_key: str) -> TaskCgroup | None:
        return self.cgroups.existing(attempt_key) if self.cgroups is not None else None
