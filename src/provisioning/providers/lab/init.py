"""PID 1 of a lab host. Run as ``python -I -S init.py CONFIG.json`` (standard library
only: it starts in well under a second and imports nothing of ours).

The first process unshares mount, UTS, IPC, network and PID namespaces (and, without
root, a user namespace), forks the host's PID 1, prints that child's pid (as this
machine sees it) and exits: no wrapper stays behind. PID 1 waits for its network to be
plugged in (one line on ``go_fd``), then makes the host's own filesystem view
(overlays on /etc, /opt, /var, /srv, /usr; fresh /proc, /run, /tmp; this machine's
homes and the workspace hidden), sets its hostname, starts ``sshd -D`` and reaps
orphans. SIGTERM stops everything in the host; when PID 1 ends, the kernel kills
what is left, and the namespaces (with their mounts and veth) vanish.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import time

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
STOP_GRACE_SECONDS = 2.0

libc = ctypes.CDLL(None, use_errno=True)
libc.mount.argtypes = [ctypes.c_char_p] * 3 + [ctypes.c_ulong, ctypes.c_char_p]


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def mount(source: str, target: str, fstype: str | None, flags: int = 0, data: str = "") -> None:
    _check(
        libc.mount(
            source.encode(),
            target.encode(),
            fstype.encode() if fstype else None,
            flags,
            data.encode() if data else None,
        ),
        f"mount {fstype or 'bind'} on {target}",
    )


class Stopping(Exception):
    """SIGTERM reached PID 1."""


def _write_maps(uid: int, gid: int) -> None:
    with open("/proc/self/setgroups", "w") as handle:
        handle.write("deny")
    with open("/proc/self/uid_map", "w") as handle:
        handle.write(f"{uid} {uid} 1")
    with open("/proc/self/gid_map", "w") as handle:
        handle.write(f"{gid} {gid} 1")


def outer(config: dict[str, object]) -> int:
    flags = CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWPID
    if config.get("own_network", True):
        flags |= CLONE_NEWNET
    uid, gid = os.getuid(), os.getgid()
    if config.get("user_namespace"):
        flags |= CLONE_NEWUSER
    _check(libc.unshare(flags), "unshare")
    if config.get("user_namespace"):
        _write_maps(uid, gid)
    child = os.fork()
    if child == 0:
        # The creator reads our parent's stdout to its end: PID 1 must not hold it.
        null = os.open(os.devnull, os.O_RDWR)
        os.dup2(null, 0)
        os.dup2(null, 1)
        os.close(null)
        try:
            inner(config)
        except BaseException as exc:  # PID 1 must say why it could not start
            _log(config, f"lab host init failed: {exc}")
            os._exit(1)
        os._exit(0)
    sys.stdout.write(f"{child}\n")
    sys.stdout.flush()
    return 0


LOG: list[int] = []


def _log(config: dict[str, object], line: str) -> None:
    # Opened before the filesystem view changes: the log's folder is hidden after.
    if not LOG:
        LOG.append(os.open(str(config["log"]), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600))
    os.write(LOG[0], f"{time.strftime('%H:%M:%S')} {line}\n".encode())


def _network(config: dict[str, object], go_fd: int) -> None:
    with os.fdopen(go_fd, "r") as pipe:
        line = pipe.readline().strip()
    if line != "go":
        raise RuntimeError("the creator went away before plugging the network in")
    if not config.get("own_network", True):
        return
    address, prefix = str(config["address"]), int(str(config["prefix"]))
    commands = [
        "link set lo up",
        f"link set {config['peer']} name eth0",
        f"addr add {address}/{prefix} dev eth0",
        "link set eth0 up",
    ]
    subprocess.run(["ip", "-batch", "-"], input="\n".join(commands) + "\n", text=True, check=True)


def _filesystem(config: dict[str, object]) -> None:
    mount("none", "/", None, MS_REC | MS_PRIVATE)
    layers = str(config["layers"])
    for target in config["overlays"]:  # type: ignore[attr-defined]
        upper, work = f"{layers}/{target.strip('/')}", f"{layers}/.work-{target.strip('/')}"
        mount(
            "overlay",
            target,
            "overlay",
            0,
            f"lowerdir={target},upperdir={upper},workdir={work}",
        )
    mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV)
    for target in ("/run", "/tmp", *config["hidden"]):  # type: ignore[misc]
        if os.path.isdir(target):
            mount("tmpfs", target, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755")
    os.chmod("/tmp", 0o1777)
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
    os.makedirs("/run/provisioning", mode=0o755, exist_ok=True)


def inner(config: dict[str, object]) -> None:
    os.setsid()
    _log(config, "PID 1 up")
    _network(config, int(str(config["go_fd"])))
    _filesystem(config)
    socket.sethostname(str(config["hostname"]))

    def stop(signum: int, frame: object) -> None:
        raise Stopping

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    env = {
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "LANG": "C.UTF-8",
    }
    sshd = subprocess.Popen(
        [str(config["sshd"]), "-D", "-e", "-f", "/etc/ssh/sshd_config.provisioning"],
        stdin=subprocess.DEVNULL,
        stdout=LOG[0],
        stderr=LOG[0],
        env=env,
        cwd="/",
    )
    _log(config, f"sshd started (pid {sshd.pid} in the host)")
    try:
        while True:
            try:
                pid, status = os.wait()
            except ChildProcessError:
                signal.pause()  # nothing left to reap: wait for the stop signal
                continue
            if pid == sshd.pid:
                _log(config, f"sshd exited ({status})")
    except Stopping:
        pass
    _log(config, "stopping")
    os.kill(-1, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    while time.monotonic() < deadline:
        try:
            os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        time.sleep(0.02)
    # Returning ends PID 1: the kernel kills whatever is still running in the host.


def main(argv: list[str]) -> int:
    with open(argv[0]) as handle:
        config = json.load(handle)
    return outer(config)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
