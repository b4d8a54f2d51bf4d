"""The one way to reach a server: the OpenSSH client.

``ssh``/``scp`` run with the user's ssh_config, agent and key types, plus what this
platform insists on: the workspace's known_hosts with ``StrictHostKeyChecking=yes``
once a key is recorded (``accept-new`` only on first contact), batch mode, one
multiplexed connection per server (ControlMaster/ControlPersist, sockets in a 0700
folder of ours). Remote commands are argv lists, quoted with :func:`shlex.join`:
user data never becomes shell code; bulk data travels as files or stdin.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from . import known_hosts
from .endpoint import Endpoint

CONTROL_PERSIST_SECONDS = 30


class SshErrorKind(StrEnum):
    UNREACHABLE = "unreachable"
    AUTH = "auth"
    HOST_KEY_CHANGED = "host_key_changed"
    SUDO_PASSWORD = "sudo_password"
    NOT_INSTALLED = "not_installed"
    FAILED = "failed"  # the remote command ran and failed


class SshError(Exception):
    """Reaching a server failed; ``str()`` is one line naming the server and what to do."""

    def __init__(self, kind: SshErrorKind, message: str, *, code: int | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.code = code


@dataclass(frozen=True)
class Completed:
    code: int
    stdout: str
    stderr: str


def control_dir() -> Path:
    """A private folder for control sockets; short, because socket paths are limited
    to ~100 bytes."""
    base = Path(os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir())
    folder = base / f"provisioning-ssh-{os.getuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    info = folder.stat()
    if info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise SshError(
            SshErrorKind.FAILED, f"{folder} must be a folder of yours with mode 0700; remove it"
        )
    return folder


def _clean_env() -> dict[str, str]:
    # ssh (and the master it leaves behind) carries no task markers nor parameters.
    return {k: v for k, v in os.environ.items() if not k.startswith("PROVISIONING_")}


class Ssh:
    """Commands and uploads to one server."""

    def __init__(self, endpoint: Endpoint, known_hosts_file: Path, *, connect_timeout: float = 10):
        self.endpoint = endpoint
        self.known_hosts_file = known_hosts_file
        self.connect_timeout = connect_timeout

    # -- options ---------------------------------------------------------------------------

    def _control_path(self) -> str:
        e = self.endpoint
        digest = hashlib.sha256(
            # Another key, jump host or known_hosts file is another connection; so is
            # another task: one task's close must not cut a parallel task's commands.
            f"{e.user}@{e.address}:{e.port}/{e.host_key_alias}/{e.key}/{e.jump}/"
            f"{self.known_hosts_file}/{os.environ.get('PROVISIONING_TASK_ID', '')}".encode()
        ).hexdigest()[:20]
        return str(control_dir() / digest)

    def options(self, *, master: bool = True) -> list[str]:
        """``master``: start a shared connection when none is open (one that outlives
        this command by ControlPersist); otherwise only use one that is."""
        e = self.endpoint
        known = bool(known_hosts.lookup(self.known_hosts_file, e.host_key_alias))
        opts = {
            "BatchMode": "yes",
            "StrictHostKeyChecking": "yes" if known else "accept-new",
            "UserKnownHostsFile": str(self.known_hosts_file),
            "GlobalKnownHostsFile": "/dev/null",
            "HostKeyAlias": e.host_key_alias,
            "CheckHostIP": "no",
            "ConnectTimeout": str(max(1, round(self.connect_timeout))),
            "ServerAliveInterval": "5",
            "ServerAliveCountMax": "3",
            "ControlMaster": "auto" if master else "no",
            "ControlPath": self._control_path(),
            "ControlPersist": str(CONTROL_PERSIST_SECONDS),
            "LogLevel": "ERROR",
            "Port": str(e.port),
            "User": e.user,
        }
        if e.key is not None:
            opts["IdentityFile"] = str(e.key)
            opts["IdentitiesOnly"] = "yes"
        if e.jump:
            opts["ProxyJump"] = e.jump
        out: list[str] = []
        for name, value in opts.items():
            out += ["-o", f"{name}={value}"]
        return out

    # -- running ---------------------------------------------------------------------------

    def remote_line(self, argv: Sequence[str], *, sudo: bool | None = None) -> str:
        use_sudo = self.endpoint.use_sudo if sudo is None else sudo
        prefix = ["sudo", "-n", "--"] if use_sudo and self.endpoint.user != "root" else []
        return shlex.join([*prefix, *argv])

    def run(
        self,
        argv: Sequence[str],
        *,
        stdin: bytes | None = None,
        timeout: float = 600,
        check: bool = True,
        sudo: bool | None = None,
    ) -> Completed:
        """Run ``argv`` on the server; a non-zero exit raises (``check``) with the
        stderr tail, an SSH failure always raises, classified."""
        line = self.remote_line(argv, sudo=sudo)
        command = ["ssh", *self.options(), "-T", self.endpoint.address, "--", line]
        try:
            done = subprocess.run(
                command,
                input=stdin if stdin is not None else b"",
                capture_output=True,
                timeout=timeout,
                env=_clean_env(),
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise SshError(
                SshErrorKind.UNREACHABLE,
                f"server {self.endpoint.server}: `{line}` did not finish in {timeout:.0f}s",
            ) from None
        stdout = done.stdout.decode(errors="replace")
        stderr = done.stderr.decode(errors="replace")
        if done.returncode == 255:
            raise self._classify(stderr)
        if "sudo: a password is required" in stderr or "sudo: a terminal is required" in stderr:
            raise SshError(
                SshErrorKind.SUDO_PASSWORD,
                f"server {self.endpoint.server}: sudo needs a password for "
                f"{self.endpoint.user}; allow it NOPASSWD or connect as root (ssh.user)",
            )
        if check and done.returncode != 0:
            tail = stderr.strip().splitlines()[-1:] or stdout.strip().splitlines()[-1:] or [""]
            raise SshError(
                SshErrorKind.FAILED,
                f"server {self.endpoint.server}: {argv[0]} exited {done.returncode}: {tail[0]}",
                code=done.returncode,
            )
        return Completed(done.returncode, stdout, stderr)

    def interactive(self, argv: Sequence[str]) -> int:
        """A terminal session (or one command) wired to ours; its exit code."""
        command = ["ssh", *self.options(master=False), self.endpoint.address]
        if argv:
            command += ["--", self.remote_line(argv)]
        return subprocess.call(command, env=_clean_env())

    def upload(self, local: Path, remote: str, *, timeout: float = 600) -> None:
        """Copy a file or a folder (recursively) to ``remote`` on the server."""
        command = [
            "scp",
            "-q",
            "-r",
            "-p",
            *self.options(),
            "--",
            str(local),
            f"{self.endpoint.address}:{remote}",
        ]
        # scp has no Port option as argument of its own beyond -o Port, which options() sets.
        done = subprocess.run(
            command, capture_output=True, timeout=timeout, env=_clean_env(), check=False
        )
        if done.returncode != 0:
            stderr = done.stderr.decode(errors="replace")
            if done.returncode == 255 or "Connection" in stderr or "Host key" in stderr:
                raise self._classify(stderr)
            raise SshError(
                SshErrorKind.FAILED,
                f"server {self.endpoint.server}: uploading {local.name}: {stderr.strip()}",
            )

    def close(self) -> None:
        """End the shared connection (if one is open)."""
        subprocess.run(
            ["ssh", *self.options(), "-O", "exit", self.endpoint.address],
            capture_output=True,
            env=_clean_env(),
            timeout=10,
            check=False,
        )

    # -- errors ----------------------------------------------------------------------------

    def _classify(self, stderr: str) -> SshError:
        e = self.endpoint
        where = f"server {e.server} ({e.user}@{e.address}:{e.port})"
        text = stderr.strip()
        if (
            "REMOTE HOST IDENTIFICATION HAS CHANGED" in text
            or "Host key verification failed" in text
        ):
            recorded = known_hosts.lookup(self.known_hosts_file, e.host_key_alias)
            offered = scan_host_key(e.address, e.port)
            return SshError(
                SshErrorKind.HOST_KEY_CHANGED,
                f"{where}: host key changed: recorded "
                f"{', '.join(map(known_hosts.fingerprint, recorded)) or 'none'}, offered "
                f"{known_hosts.fingerprint(offered) if offered else 'unknown'}; nothing was done "
                f"(if the server was rebuilt, remove its line from {self.known_hosts_file})",
            )
        if "Permission denied" in text or "Too many authentication failures" in text:
            return SshError(
                SshErrorKind.AUTH,
                f"{where}: authentication refused for {e.user} with key "
                f"{e.key or 'from the agent'}; check ssh.user and ssh.key",
            )
        last = text.splitlines()[-1] if text else "no answer"
        return SshError(
            SshErrorKind.UNREACHABLE,
            f"{where}: cannot connect: {last}; is the server running (provisioning server list)?",
        )


def scan_host_key(address: str, port: int, timeout: float = 5) -> str | None:
    """The ed25519 key the server offers now (``type base64``), via ssh-keyscan."""
    try:
        done = subprocess.run(
            [
                "ssh-keyscan",
                "-T",
                str(max(1, round(timeout))),
                "-p",
                str(port),
                "-t",
                "ed25519",
                address,
            ],
            capture_output=True,
            text=True,
            timeout=timeout + 5,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return None
    for line in done.stdout.splitlines():
        fields = line.split()
        if len(fields) >= 3 and not line.startswith("#"):
            return f"{fields[1]} {fields[2]}"
    return None


def wait_for_ssh(
    endpoint: Endpoint,
    known_hosts_file: Path,
    *,
    timeout: float,
    progress: Callable[[str], None] | None = None,
) -> float:
    """Wait until the server's SSH port answers with an SSH banner and its host key is
    known (recorded now on first contact); returns the seconds waited."""
    started = time.monotonic()
    deadline = started + timeout
    last_said = 0.0
    where = f"server {endpoint.server} ({endpoint.address}:{endpoint.port})"
    while True:
        try:
            with socket.create_connection((endpoint.address, endpoint.port), timeout=2) as sock:
                sock.settimeout(2)
                if sock.recv(64).startswith(b"SSH-"):
                    break
        except OSError:
            pass
        now = time.monotonic()
        if now >= deadline:
            raise SshError(
                SshErrorKind.UNREACHABLE,
                f"{where}: cannot connect: SSH did not answer within {timeout:.0f}s",
            )
        if progress is not None and now - last_said >= 5:
            progress(f"waiting for SSH on {endpoint.address}:{endpoint.port}")
            last_said = now
        time.sleep(0.1)
    if not known_hosts.lookup(known_hosts_file, endpoint.host_key_alias):
        offered = scan_host_key(endpoint.address, endpoint.port)
        if offered is None:
            raise SshError(SshErrorKind.UNREACHABLE, f"{where}: cannot read its host key")
        known_hosts.record(known_hosts_file, endpoint.host_key_alias, offered)
    return time.monotonic() - started
