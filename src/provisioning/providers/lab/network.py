"""The lab network: one bridge on this machine, one veth per lab host, addresses from
a private subnet with no route out (hosts get no default route; nothing NATs).

Every name carries the ``pvl`` prefix (bridge ``pvlab0``, veths ``pvl<index>``), so
nothing here touches links it did not make. Which addresses are taken is kept in
``/run/provisioning-lab/`` (one file per live host, under a lock): hosts of every
workspace on this machine share the bridge, and the last one to go removes it.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import json
import os
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...execution.procfs import start_ticks

BRIDGE = "pvlab0"
BRIDGE_MAC = "02:70:76:6c:00:01"
SUBNET = ipaddress.IPv4Network("10.177.0.0/16")
REGISTRY = Path(os.environ.get("PROVISIONING_LAB_REGISTRY", "/run/provisioning-lab"))
# Without root (no CAP_NET_ADMIN): no network namespace, no bridge; each host gets an
# address of its own on this machine's loopback and sshd a high port.
LOOPBACK_SUBNET = ipaddress.IPv4Network("127.177.0.0/16")
UNPRIVILEGED_SSH_PORT = 2222


def privileged() -> bool:
    return os.geteuid() == 0


def _registry() -> Path:
    if privileged():
        return REGISTRY
    return Path(tempfile.gettempdir()) / f"provisioning-lab-{os.getuid()}"


def _subnet() -> ipaddress.IPv4Network:
    return SUBNET if privileged() else LOOPBACK_SUBNET


class LabNetworkError(Exception):
    """The lab network could not be set up; the message says what failed."""


@dataclass(frozen=True)
class Lease:
    """An address of the lab subnet, held by one host."""

    index: int
    address: str
    prefix: int

    @property
    def veth(self) -> str:
        return f"pvl{self.index:06x}"

    @property
    def peer(self) -> str:
        return f"pvp{self.index:06x}"

    @property
    def gateway(self) -> str:
        return str(SUBNET[1])


def ip(*commands: str) -> None:
    """Run ``ip`` commands in one process (``ip -batch``); a failure names the command."""
    done = subprocess.run(
        ["ip", "-batch", "-"],
        input="\n".join(commands) + "\n",
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise LabNetworkError(f"ip: {done.stderr.strip() or done.stdout.strip()}")


def _link_exists(name: str) -> bool:
    return Path("/sys/class/net", name).exists()


@contextlib.contextmanager
def _locked() -> Iterator[Path]:
    registry = _registry()
    hosts = registry / "hosts"
    registry.mkdir(exist_ok=True, mode=0o700)
    hosts.mkdir(parents=True, exist_ok=True, mode=0o700)
    with open(registry / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield hosts


def _live(entry: Path) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads(entry.read_text())
    except (OSError, ValueError):
        return None
    pid = data.get("pid")
    if pid is None:
        # Reserved by a creation in progress (or one that died half-way: its creator
        # removes it; a stale reservation only costs one address).
        return data
    if start_ticks(int(pid)) != data.get("ticks"):
        entry.unlink(missing_ok=True)
        return None
    return data


def lease(owner: dict[str, Any], address: str | None = None) -> Lease:
    """Reserve an address (the lowest free one, or ``address``) and make sure the
    bridge exists."""
    with _locked() as hosts:
        subnet = _subnet()
        taken = {int(p.stem) for p in hosts.glob("*.json") if _live(p) is not None}
        if address is not None:
            wanted = ipaddress.ip_address(address)
            if wanted not in subnet or wanted in (subnet[0], subnet[1], subnet[-1]):
                raise LabNetworkError(f"{address} is not a host address of the lab subnet {subnet}")
            index = int(wanted) - int(subnet[0])
            if index in taken:
                raise LabNetworkError(f"{address} is already used by another lab host")
        else:
            index = next(i for i in range(2, subnet.num_addresses - 1) if i not in taken)
        (hosts / f"{index}.json").write_text(json.dumps(owner))
        if not privileged():
            return Lease(index, str(subnet[index]), 32)
        if not _link_exists(BRIDGE):
            ip(
                # A fixed MAC (else the bridge takes its lowest port's, and changes it as
                # hosts come and go) and no forwarding delay: a new host answers at once.
                f"link add {BRIDGE} address {BRIDGE_MAC} type bridge forward_delay 0",
                f"addr add {SUBNET[1]}/{SUBNET.prefixlen} dev {BRIDGE}",
                f"link set {BRIDGE} up",
            )
        return Lease(index, str(subnet[index]), subnet.prefixlen)


def plug(held: Lease, pid: int) -> None:
    """A veth pair: one end on the bridge, the other moved into ``pid``'s netns."""
    ip(
        f"link add {held.veth} type veth peer name {held.peer}",
        f"link set {held.peer} netns {pid}",
        f"link set {held.veth} master {BRIDGE} up",
        # A previous host at this address had another MAC: forget it now, not when
        # the neighbour entry goes stale.
        f"neigh flush to {held.address} dev {BRIDGE}",
    )


def confirm(held: Lease, owner: dict[str, Any]) -> None:
    with _locked() as hosts:
        (hosts / f"{held.index}.json").write_text(json.dumps(owner))


def release(index: int) -> None:
    """Give the address back; remove the veth if it outlived its host and the bridge
    when no lab host is left."""
    with _locked() as hosts:
        (hosts / f"{index}.json").unlink(missing_ok=True)
        if not privileged():
            return
        veth = f"pvl{index:06x}"
        if _link_exists(veth):
            with contextlib.suppress(LabNetworkError):
                ip(f"link del {veth}")
        if not any(_live(p) is not None for p in hosts.glob("*.json")) and _link_exists(BRIDGE):
            ip(f"link del {BRIDGE}")
