"""The workspace's ``runtime/known_hosts``: one line per server, keyed by the server's
name (ssh's ``HostKeyAlias``), so a rebuilt server at a new address keeps its entry
and a changed key is told apart from a new server."""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import os
from pathlib import Path


def fingerprint(key: str) -> str:
    """``SHA256:...`` of a public key line (``type base64 [comment]``), as ssh shows it."""
    blob = base64.b64decode(key.split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def alias(infra: str, hostname: str) -> str:
    return f"{hostname}.{infra}.provisioning"


def lookup(path: Path, name: str) -> list[str]:
    """The keys (``type base64``) recorded for ``name``."""
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return []
    found = []
    for line in lines:
        fields = line.split()
        if len(fields) >= 3 and name in fields[0].split(","):
            found.append(f"{fields[1]} {fields[2]}")
    return found


def record(path: Path, name: str, key: str) -> None:
    """Record ``key`` for ``name`` unless it is known already (first contact)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        kind, data = key.split()[:2]
        if f"{kind} {data}" in lookup(path, name):
            return
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with os.fdopen(fd, "a") as handle:
            handle.write(f"{name} {kind} {data}\n")


def forget(path: Path, name: str) -> None:
    """Drop ``name``'s keys (its server was deleted: a new one will have new keys)."""
    with contextlib.suppress(FileNotFoundError):
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path.with_suffix(".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            kept = [
                line
                for line in path.read_text().splitlines(keepends=True)
                if not (line.split() and name in line.split()[0].split(","))
            ]
            temp = path.with_name(path.name + ".new")
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.writelines(kept)
            os.replace(temp, path)
