"""A task is its whole process tree: each attempt in a cgroup v2 group of its own.

A process group misses what calls ``setsid`` or double-forks; a cgroup does not:
every descendant stays in it, and ``cgroup.kill`` ends them all at once (as
systemd-run and container runtimes do). The daemon keeps one sub-hierarchy
(``provisioning-tasks`` under its own cgroup) with one group per attempt, named
after the task and the attempt, so a restarted daemon finds the groups of the
attempts it recovers. Where no writable cgroup v2 is to be had the process group
stays the fallback, and the log says so once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("provisioning.execution.cgroups")

HIERARCHY = "provisioning-tasks"
# Services the platform's own operations start (a taskserv's daemon, a lab host) are
# meant to outlive their task: after a normal exit they are moved here, not killed.
SERVICES = "provisioning-services"
_SAFE = re.compile(r"[^A-Za-z0-9_.-]")


def _cgroup2_mount() -> Path | None:
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        before, _, after = line.partition(" - ")
        if after.split(" ", 1)[0] == "cgroup2":
            return Path(before.split(" ")[4])
    return None


def _own_cgroup() -> str | None:
    try:
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            if line.startswith("0::"):
                return line[3:]
    except OSError:
        return None
    return None


@dataclass(frozen=True)
class Usage:
    """What an attempt's tree used: CPU seconds, memory now and at its peak (bytes)."""

    cpu_seconds: float | None
    memory_bytes: int | None
    memory_peak_bytes: int | None

    def describe(self) -> str:
        text = f"used {self.cpu_seconds or 0:.2f} s of CPU"
        if self.memory_peak_bytes is not None:
            text += f", {self.memory_peak_bytes / 1_048_576:.1f} MiB of memory at its peak"
        return text

    def as_dict(self) -> dict[str, float | int | None]:
        return {
            "cpu_seconds": self.cpu_seconds,
            "memory_bytes": self.memory_bytes,
            "memory_peak_bytes": self.memory_peak_bytes,
        }


class TaskCgroup:
    """One attempt's group."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @property
    def procs(self) -> Path:
        return self.path / "cgroup.procs"

    def add(self, pid: int) -> None:
        _write(self.procs, f"{pid}\n")

    def pids(self) -> list[int]:
        try:
            return [int(p) for p in _read(self.procs).split()]
        except (OSError, ValueError):
            return []

    def populated(self) -> bool:
        try:
            for line in _read(self.path / "cgroup.events").splitlines():
                key, _, value = line.partition(" ")
                if key == "populated":
                    return value.strip() == "1"
        except OSError:
            return False
        return bool(self.pids())

    def kill(self) -> None:
        """SIGKILL every process in the group (``cgroup.kill``; one by one on kernels
        before 5.14)."""
        try:
            _write(self.path / "cgroup.kill", "1\n")
            return
        except FileNotFoundError:
            if not self.path.exists():
                return
        except OSError:
            pass
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)

    def signal(self, sig: int) -> None:
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)

    def usage(self) -> Usage:
        cpu = None
        with contextlib.suppress(OSError, ValueError):
            for line in _read(self.path / "cpu.stat").splitlines():
                key, _, value = line.partition(" ")
                if key == "usage_usec":
                    cpu = int(value) / 1e6
        memory = _read_int(self.path / "memory.current")
        return Usage(cpu, memory, _read_int(self.path / "memory.peak"))

    def end(self, wait_seconds: float = 10.0) -> bool:
        """Kill what is left, wait until the group is empty, remove it; ``True`` if it
        emptied in time."""
        deadline = time.monotonic() + wait_seconds
        while True:
            if not self.path.exists():
                return True
            if not self.populated():
                with contextlib.suppress(OSError):
                    self.path.rmdir()
                return True
            self.kill()
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)


def release_into(group: TaskCgroup, services: Path) -> int:
    """Move what is left in ``group`` to a services group of the same name (kept
    running), then remove ``group``; return how many processes moved."""
    moved: set[int] = set()
    target = TaskCgroup(services / group.path.name)
    # Services may fork while they are moved: move until the group is empty.
    for _ in range(50):
        pids = group.pids()
        if not pids:
            break
        target.path.mkdir(parents=True, exist_ok=True)
        for pid in pids:
            with contextlib.suppress(OSError):
                target.add(pid)
                moved.add(pid)
    with contextlib.suppress(OSError):
        group.path.rmdir()
    return len(moved)


def _read(path: Path) -> str:
    # Raw reads and writes: four system calls where read_text makes seven, and the
    # supervisor reads four of these files for every attempt that ends.
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks).decode()


def _write(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def _read_int(path: Path) -> int | None:
    try:
        text = _read(path).strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


class Cgroups:
    """The daemon's sub-hierarchy, or nothing (:meth:`discover` returns ``None``)."""

    def __init__(self, root: Path, memory_max: str = "") -> None:
        self.root = root
        self.services = root.parent / SERVICES
        self.memory_max = memory_max
        self.memory = False
        if memory_max:
            self.memory = self._enable("memory")
            if not self.memory:
                log.warning(
                    "executor.memory_max = %s: the cgroup v2 memory controller is not "
                    "available under %s; tasks run without a memory cap",
                    memory_max,
                    root,
                )

    @classmethod
    def discover(cls, memory_max: str = "") -> Cgroups | None:
        """The sub-hierarchy under this process's own cgroup, created if need be."""
        mount = _cgroup2_mount()
        own = _own_cgroup()
        if mount is None or own is None:
            log.warning(
                "no cgroup v2 hierarchy: a task is ended through its process group only "
                "(a process that calls setsid can outlive it)"
            )
            return None
        root = mount / own.lstrip("/") / HIERARCHY
        try:
            root.mkdir(exist_ok=True)
            probe = root / f"probe-{os.getpid()}"
            probe.mkdir(exist_ok=True)
            probe.rmdir()
        except OSError as exc:
            log.warning(
                "cgroup v2 at %s is not writable (%s): a task is ended through its process "
                "group only (a process that calls setsid can outlive it)",
                root.parent,
                exc.strerror,
            )
            return None
        return cls(root, memory_max)

    def _enable(self, controller: str) -> bool:
        try:
            available = (self.root / "cgroup.controllers").read_text().split()
        except OSError:
            return False
        if controller not in available:
            return False
        try:
            (self.root / "cgroup.subtree_control").write_text(f"+{controller}\n")
        except OSError:
            return False
        return True

    def release(self, group: TaskCgroup) -> int:
        return release_into(group, self.services)

    def sweep(self, older_than: float) -> int:
        """Remove empty attempt (and services) groups last changed before ``older_than``."""
        removed = 0
        folders = [self.root, self.services] if self.services.is_dir() else [self.root]
        for path in [p for folder in folders for p in folder.iterdir()]:
            if not path.is_dir():
                continue
            group = TaskCgroup(path)
            try:
                stale = path.stat().st_mtime < older_than
            except OSError:
                continue
            if stale and not group.populated():
                with contextlib.suppress(OSError):
                    path.rmdir()
                    removed += 1
        return removed

    def path_for(self, attempt_key: str) -> Path:
        return self.root / _SAFE.sub("_", attempt_key)

    def create(self, attempt_key: str) -> TaskCgroup:
        group = TaskCgroup(self.path_for(attempt_key))
        group.path.mkdir(exist_ok=True)
        if self.memory:
            (group.path / "memory.max").write_text(f"{self.memory_max}\n")
        return group

    def existing(self, attempt_key: str) -> TaskCgroup | None:
        path = self.path_for(attempt_key)
        return TaskCgroup(path) if path.is_dir() else None
