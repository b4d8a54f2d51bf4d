"""Lab-host helpers shared by the tests: whether lab hosts can run here, and what of
theirs is left on this machine (processes, mounts, veths, the bridge)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from provisioning.providers.lab import network
from provisioning.providers.lab.hosts import SSHD_CANDIDATES

CAN_RUN = os.geteuid() == 0 and any(os.access(p, os.X_OK) for p in SSHD_CANDIDATES)
needs_lab = pytest.mark.skipif(
    not CAN_RUN,
    reason="lab hosts need root and Debian's sshd (apt-get install openssh-server; .ci/run does)",
)


def package_cache() -> str:
    """One package cache for the whole test run (``apt-get download`` once)."""
    folder = Path(os.environ.get("PYTEST_LAB_PACKAGES", "/tmp/provisioning-test-packages"))
    folder.mkdir(parents=True, exist_ok=True)
    return str(folder)


def processes_mentioning(marker: str) -> list[int]:
    needle = marker.encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            seen = (entry / "cmdline").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if needle in seen and state != "Z":
            found.append(int(entry.name))
    return found


def mounts_mentioning(marker: str) -> list[str]:
    return [
        line for line in Path("/proc/self/mountinfo").read_text().splitlines() if marker in line
    ]


def lab_links() -> list[str]:
    return sorted(p.name for p in Path("/sys/class/net").iterdir() if p.name.startswith("pv"))


def leftovers(folder: Path) -> dict[str, object]:
    """What of the lab hosts under ``folder`` still exists on this machine."""
    found: dict[str, object] = {
        "processes": processes_mentioning(str(folder)),
        "mounts": mounts_mentioning(str(folder)),
    }
    registry = network.REGISTRY / "hosts"
    if registry.is_dir():
        ours = [p.name for p in registry.iterdir() if str(folder) in p.read_text()]
        if ours:
            found["registry"] = ours
    return {k: v for k, v in found.items() if v}
