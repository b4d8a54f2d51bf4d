"""Linux /proc helpers: process identity across restarts, and finding processes
by the attempt marker in their environment."""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")


@dataclass(frozen=True)
class ProcessInfo:
    """Enough about a spawned process group to tell, later, whether it still lives."""

    pid: int
    pgid: int
    start_ticks: int
    boot_id: str


@functools.cache
def boot_id() -> str:
    try:
        return (PROC / "sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def start_ticks(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks since boot; tells a pid's reuse apart."""
    fields = _stat_fields(str(pid))
    return None if fields is None else int(fields[19])


def _stat_fields(pid: str) -> list[str] | None:
    try:
        stat = (PROC / pid / "stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses: split after it.
    return stat[stat.rindex(")") + 2 :].split()


def pgid_alive(pgid: int) -> bool:
    """Whether a live (non-zombie) process is still in group ``pgid``.

    ``killpg(pgid, 0)`` alone is not enough: it succeeds on zombies, which an
    init that does not reap (as in some containers) leaves behind.
    """
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            fields = _stat_fields(entry.name)
            if fields is not None and int(fields[2]) == pgid and fields[0] != "Z":
                return True
    return False


def is_zombie_or_gone(pid: int) -> bool:
    fields = _stat_fields(str(pid))
    return fields is None or fields[0] == "Z"


def pids_with_env(name: str, value: str) -> list[int]:
    """Processes whose environment holds ``name=value`` (survivors that left the group)."""
    needle = f"{name}={value}".encode()
    found = []
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if needle in environ.split(b"\0"):
            found.append(int(entry.name))
    return found
