"""Who a task runs as, and what environment it gets.

A task does not inherit the daemon's environment (its DSNs, cloud credentials,
anything an operator exported): it gets a few variables every program needs,
the configuration locators, ``executor.env`` and the task contract's own
variables; the provider credentials go only to the platform's own operations,
which need them. When the daemon runs as root, tasks run as ``executor.run_as``.
"""

from __future__ import annotations

import os
import pwd
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ..tasks import RunSpec

# What any program expects to find (locale, time zone, search path, CA bundles).
_PASSED = (
    "PATH",
    "LANG",
    "LANGUAGE",
    "TZ",
    "TMPDIR",
    "HOME",
    "USER",
    "LOGNAME",
    "XDG_CONFIG_HOME",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "REQUESTS_CA_BUNDLE",
)
_PASSED_PREFIXES = ("LC_",)
# The platform's configuration (the layered files and PROVISIONING_<SECTION>_<KEY>),
# except what can hold a secret: the store's DSN, passwords, tokens.
_CONFIG_PREFIX = "PROVISIONING_"
_SECRET_WORDS = ("STORAGE", "DSN", "SURREALDB", "PASSWORD", "SECRET", "TOKEN")
# Provider credentials: only for the platform's own operations.
_CREDENTIAL_PREFIXES = ("AWS_", "UPCLOUD_", "SSH_AUTH_SOCK")
_PACKAGE = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class TaskUser:
    """The unprivileged account tasks run as."""

    name: str
    uid: int
    gid: int
    home: str

    @classmethod
    def lookup(cls, name: str) -> TaskUser:
        """Raises ``KeyError`` when there is no such user."""
        entry = pwd.getpwnam(name)
        return cls(name, entry.pw_uid, entry.pw_gid, entry.pw_dir)


def is_platform_operation(run: RunSpec) -> bool:
    """The platform's own handlers: its Python operations and its taskserv catalogs."""
    if run.python is not None:
        return run.python.module.startswith("provisioning.")
    if run.nushell is not None and run.nushell.lib:
        return Path(run.nushell.lib).resolve().is_relative_to(_PACKAGE)
    return False


def may_leave_services(run: RunSpec) -> bool:
    """Whether what the handler starts in a session of its own may outlive it: the
    platform's Python operations and the taskserv catalogs (a workspace's own too),
    which start services and lab hosts on purpose."""
    if run.python is not None:
        return run.python.module.startswith("provisioning.")
    return run.nushell is not None and run.nushell.lib is not None


def task_environment(
    run: RunSpec,
    configured: Mapping[str, str],
    *,
    user: TaskUser | None = None,
    daemon_env: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The base environment of a task (before the contract's variables)."""
    source = os.environ if daemon_env is None else daemon_env
    credentials = is_platform_operation(run)
    env: dict[str, str] = {}
    for name, value in source.items():
        if (
            name in _PASSED
            or name.startswith(_PASSED_PREFIXES)
            or (name.startswith(_CONFIG_PREFIX) and not any(w in name for w in _SECRET_WORDS))
            or (credentials and name.startswith(_CREDENTIAL_PREFIXES))
        ):
            env[name] = value
    env.setdefault("PATH", os.defpath)
    if user is not None:
        env.update(HOME=user.home, USER=user.name, LOGNAME=user.name)
    env.update(configured)
    return env
