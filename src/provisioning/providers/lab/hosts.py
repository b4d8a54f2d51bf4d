"""Lab hosts: a server made of Linux namespaces running Debian's real ``sshd``.

A host's folder (``runtime/servers/<infra>/<hostname>/``) holds ``host.json`` (what
exists: address, PID 1, its start time), the overlay layers of its /etc, /opt, /var,
/srv and /usr (``layers/``), its PID 1's configuration and log. The host itself lives
in the kernel: killing its PID 1 ends every process in it, and its mounts, network
namespace and veth vanish with it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from ...execution.procfs import start_ticks
from . import network

INIT = Path(__file__).resolve().parent / "init.py"
OVERLAYS = ("/etc", "/opt", "/var", "/srv", "/usr")
HIDDEN = ("/root", "/home")
SSHD_CANDIDATES = ("/usr/sbin/sshd", "/usr/bin/sshd")
STOP_GRACE_SECONDS = 3.0
SSHD_START_SECONDS = 15.0
SSHD_CONFIG = """\
# Written by provisioning for lab host {hostname}.
Port {port}
PidFile /run/sshd.pid
ListenAddress {address}
HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
AuthorizedKeysFile /etc/ssh/provisioning_authorized_keys
PrintMotd no
Subsystem sftp internal-sftp
"""


class LabHostError(Exception):
    """A lab host cannot be made or reached; the message says what to do."""


class HostState(StrEnum):
    RUNNING = "running"
    SSHD_DEAD = "sshd-dead"  # the host lives but its sshd does not
    STOPPED = "stopped"  # PID 1 is gone (killed, or this machine rebooted)


@dataclass(frozen=True)
class LabHost:
    hostname: str
    address: str
    port: int
    pid: int
    host_key: str  # "ssh-ed25519 AAAA..."
    folder: Path


def sshd_binary() -> str:
    for candidate in SSHD_CANDIDATES:
        if os.access(candidate, os.X_OK):
            return candidate
    raise LabHostError(
        "sshd is not installed on this machine; lab hosts run Debian's OpenSSH server: "
        "apt-get install openssh-server"
    )


UNPRIVILEGED_NOTE = (
    "not root (no CAP_NET_ADMIN): lab hosts degrade to user namespaces, with no network "
    "namespace of their own: each gets a 127.177.x.y address on this machine's loopback, "
    f"sshd on port {network.UNPRIVILEGED_SSH_PORT}, login as user 'lab'; run as root for "
    "real isolated networks"
)
LAB_USER = "lab"


def check_privileges() -> None:
    """Root, or user namespaces (the degraded, unprivileged lab hosts)."""
    if os.geteuid() == 0:
        return
    try:
        allowed = int(Path("/proc/sys/user/max_user_namespaces").read_text())
    except (OSError, ValueError):
        allowed = 0
    if allowed <= 0:
        raise LabHostError(
            "lab hosts need root (CAP_NET_ADMIN, CAP_SYS_ADMIN) or user namespaces "
            "(user.max_user_namespaces is 0 here); run as root (sudo)"
        )


def login_user() -> str:
    return "root" if network.privileged() else LAB_USER


def ssh_port() -> int:
    return 22 if network.privileged() else network.UNPRIVILEGED_SSH_PORT


def _overlapping(folder: Path) -> str | None:
    resolved = folder.resolve()
    for target in OVERLAYS:
        if resolved.is_relative_to(target):
            return target
    return None


def _prepare(folder: Path, hostname: str, address: str, port: int, keys: str) -> str:
    layers = folder / "layers"
    for target in OVERLAYS:
        name = target.strip("/")
        (layers / name).mkdir(parents=True, exist_ok=True)
        (layers / f".work-{name}").mkdir(parents=True, exist_ok=True)
    etc_ssh = layers / "etc" / "ssh"
    etc_ssh.mkdir(parents=True, exist_ok=True)
    (layers / "etc" / "hostname").write_text(hostname + "\n")
    (etc_ssh / "sshd_config.provisioning").write_text(
        SSHD_CONFIG.format(hostname=hostname, address=address, port=port)
    )
    authorized = etc_ssh / "provisioning_authorized_keys"
    authorized.write_text(keys)
    authorized.chmod(0o644)  # public keys, read as the logging-in user
    key = etc_ssh / "ssh_host_ed25519_key"
    if not key.exists():
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", hostname, "-f", str(key)],
            check=True,
            capture_output=True,
        )
    if not network.privileged():
        # sshd runs as this user: it logs in only as itself, named 'lab' in the host's
        # own /etc/passwd (with a shell, whatever this machine's passwd says).
        passwd = Path("/etc/passwd").read_text()
        entry = f"{LAB_USER}:x:{os.getuid()}:{os.getgid()}:lab host user:/tmp:/bin/sh\n"
        (layers / "etc" / "passwd").write_text(passwd.rstrip("\n") + "\n" + entry)
    public = (etc_ssh / "ssh_host_ed25519_key.pub").read_text().split()
    return f"{public[0]} {public[1]}"


def _spawn(folder: Path, config: dict[str, Any]) -> tuple[int, int]:
    """Start the host's PID 1; its pid (as this machine sees it) and the pipe's write
    end that lets it go on once its network is plugged in."""
    go_read, go_write = os.pipe()
    config = {**config, "go_fd": go_read}
    (folder / "init.json").write_text(json.dumps(config, indent=2))
    # A clean environment: the host must not carry a task's markers (a task's
    # survivors are found by them and killed) nor its credentials.
    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
    with open(folder / "host.log", "ab") as log:
        starter = subprocess.Popen(
            [sys.executable, "-I", "-S", str(INIT), str(folder / "init.json")],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log,
            pass_fds=(go_read,),
            env=env,
            start_new_session=True,
            cwd="/",
        )
    os.close(go_read)
    out, _ = starter.communicate(timeout=30)
    if starter.returncode != 0 or not out.strip().isdigit():
        os.close(go_write)
        raise LabHostError(f"the lab host did not start (see {folder / 'host.log'})")
    return int(out.strip()), go_write


def create(
    folder: Path, hostname: str, authorized_keys: str, *, address: str | None = None
) -> LabHost:
    """Make and start the lab host ``hostname`` in ``folder``; returns once its PID 1
    runs (its sshd may need a moment more: wait for SSH to answer)."""
    check_privileges()
    sshd = sshd_binary()
    overlap = _overlapping(folder)
    if overlap is not None:
        raise LabHostError(
            f"the workspace is under {overlap}, which lab hosts overlay; move it elsewhere"
        )
    folder.mkdir(parents=True, exist_ok=True)
    owner = {"folder": str(folder), "hostname": hostname, "pid": None}
    held = network.lease(owner, address)
    try:
        port = ssh_port()
        host_key = _prepare(folder, hostname, held.address, port, authorized_keys)
        pid, go = _spawn(
            folder,
            {
                "hostname": hostname,
                "address": held.address,
                "prefix": held.prefix,
                "peer": held.peer,
                "layers": str(folder / "layers"),
                "overlays": list(OVERLAYS),
                "hidden": [*HIDDEN, str(folder.parent.parent.parent.parent)],
                "sshd": sshd,
                "log": str(folder / "host.log"),
                "own_network": network.privileged(),
                "user_namespace": not network.privileged(),
            },
        )
        try:
            if network.privileged():
                network.plug(held, pid)
            with os.fdopen(go, "w") as pipe:
                pipe.write("go\n")
        except BaseException:
            _kill(pid)
            raise
        ticks = start_ticks(pid)
        network.confirm(held, {**owner, "pid": pid, "ticks": ticks})
    except BaseException:
        network.release(held.index)
        raise
    record = {
        "hostname": hostname,
        "address": held.address,
        "port": port,
        "user": login_user(),
        "index": held.index,
        "pid": pid,
        "ticks": ticks,
        "boot_ticks": ticks,
        "host_key": host_key,
        "created_at": time.time(),
    }
    write(folder, record)
    _await_sshd(folder, held.index, held.address, port, pid, ticks)
    return LabHost(hostname, held.address, port, pid, host_key, folder)


def _await_sshd(
    folder: Path, index: int, address: str, port: int, pid: int, ticks: int | None
) -> None:
    """Until the host's sshd listens (a fraction of a second), or fail saying why."""
    deadline = time.monotonic() + SSHD_START_SECONDS
    veth = Path("/sys/class/net") / network.Lease(index, address, 0).veth
    while time.monotonic() < deadline:
        if not _alive(pid, ticks):
            break
        # Not before the host's end of the link is up: an ARP request sent earlier goes
        # unanswered, and the kernel asks again only a second later.
        with contextlib.suppress(OSError):
            if network.privileged() and (veth / "operstate").read_text().strip() != "up":
                time.sleep(0.005)
                continue
        try:
            # A short timeout: a SYN sent before the host's address was up is lost,
            # and the kernel would resend it only after a second.
            with socket.create_connection((address, port), timeout=0.1):
                return
        except OSError:
            time.sleep(0.01)
    log = (folder / "host.log").read_text(errors="replace").strip().splitlines()[-1:] or ["?"]
    raise LabHostError(f"its sshd did not start ({log[0]}; see {folder / 'host.log'})")


def write(folder: Path, record: dict[str, Any]) -> None:
    temp = folder / ".host.json.new"
    temp.write_text(json.dumps(record, indent=2))
    os.replace(temp, folder / "host.json")


def read(folder: Path) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads((folder / "host.json").read_text())
    except (OSError, ValueError):
        return None
    return data


def state(folder: Path) -> HostState:
    record = read(folder)
    if record is None or start_ticks(int(record["pid"])) != record["ticks"]:
        return HostState.STOPPED
    return HostState.RUNNING if _sshd_pid(int(record["pid"])) else HostState.SSHD_DEAD


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        with contextlib.suppress(OSError):
            found += [int(p) for p in task.read_text().split()]
    return found


def _sshd_pid(pid: int) -> int | None:
    for child in _children(pid):
        with contextlib.suppress(OSError):
            if Path(f"/proc/{child}/comm").read_text().strip() == "sshd":
                return child
    return None


def stop_sshd(folder: Path) -> bool:
    """Kill the host's sshd (the host stays): what a crashed daemon looks like."""
    record = read(folder)
    sshd = _sshd_pid(int(record["pid"])) if record else None
    if sshd is None:
        return False
    os.kill(sshd, signal.SIGKILL)
    return True


def _kill(pid: int, grace: float = STOP_GRACE_SECONDS) -> None:
    """SIGTERM to the host's PID 1 (it stops its processes), SIGKILL after ``grace``;
    returns when it is gone."""
    ticks = start_ticks(pid)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while _alive(pid, ticks) and time.monotonic() < deadline:
        time.sleep(0.02)
    if _alive(pid, ticks):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while _alive(pid, ticks) and time.monotonic() < deadline:
            time.sleep(0.02)


def _alive(pid: int, ticks: int | None) -> bool:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return False
    return fields[0] != "Z" and start_ticks(pid) == ticks


def destroy(folder: Path) -> bool:
    """Stop the host (its PID 1, so every process in it), free its address and delete
    its folder. ``False`` when there was no host."""
    record = read(folder)
    if record is None and not folder.exists():
        return False
    if record is not None:
        if start_ticks(int(record["pid"])) == record["ticks"]:
            _kill(int(record["pid"]))
        network.release(int(record["index"]))
    shutil.rmtree(folder, ignore_errors=True)
    return record is not None
