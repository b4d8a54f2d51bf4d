"""The ``local`` provider: a server is a sandbox directory tree on this machine.

``runtime/servers/<infra>/<hostname>/`` holds the server's filesystem (``etc``,
``opt``, ``var``, ``run``) and ``server.json``. Taskservs install into it; a
service taskserv runs real processes bound to loopback, recorded as pid files
under ``run/``, and deleting the server stops them.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import tempfile
import time
from pathlib import Path
from typing import Any

from ..execution.procfs import start_ticks
from .base import (
    HOSTNAME_RE,
    ProviderContext,
    ProviderError,
    ProviderErrorKind,
    ServerRecord,
    ServerSpec,
)

PLANS: list[dict[str, Any]] = [
    {"plan": "small", "cores": 1, "memory_mb": 1024},
    {"plan": "medium", "cores": 2, "memory_mb": 4096},
    {"plan": "large", "cores": 4, "memory_mb": 8192},
]
LAYOUT = ("etc", "opt", "var", "run", "var/log")
STOP_GRACE_SECONDS = 5.0


def server_dir(context: ProviderContext, hostname: str) -> Path:
    """The server's tree; refuses any name that is not an RFC 1123 label (so no path
    can leave the workspace, whatever a caller passes)."""
    for label, value in (("hostname", hostname), ("infra", context.infra)):
        if not HOSTNAME_RE.fullmatch(value):
            raise ProviderError(
                ProviderErrorKind.INVALID, f"{label} {value!r} is not an RFC 1123 label"
            )
    return context.runtime_dir / "servers" / context.infra / hostname


def stop_services(
    root: Path, only: str | None = None, grace: float = STOP_GRACE_SECONDS
) -> list[int]:
    """Stop the processes recorded under ``root/run/*.pid`` (or only ``run/<only>.pid``):
    SIGTERM to each one's group, SIGKILL after ``grace``."""
    stopped = []
    for pid_file in sorted((root / "run").glob(f"{only or '*'}.pid")):
        try:
            fields = pid_file.read_text().split()
            pid = int(fields[0])
            ticks = int(fields[1]) if len(fields) > 1 else None
        except (OSError, ValueError, IndexError):
            pid_file.unlink(missing_ok=True)
            continue
        if ticks is not None and start_ticks(pid) != ticks:
            # The service is gone and its pid now belongs to another process.
            pid_file.unlink(missing_ok=True)
            continue
        if _signal_group(pid, signal.SIGTERM):
            deadline = time.monotonic() + grace
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if _alive(pid):
                _signal_group(pid, signal.SIGKILL)
            stopped.append(pid)
        pid_file.unlink(missing_ok=True)
    return stopped


def _signal_group(pid: int, sig: int) -> bool:
    try:
        os.killpg(pid, sig)  # services lead their own session and group
    except ProcessLookupError:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return False
    return True


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


class LocalProvider:
    """Servers as directories of this machine; no account needed."""

    name = "local"

    def __init__(self, context: ProviderContext) -> None:
        self.context = context

    def _record(self, root: Path) -> ServerRecord:
        data: dict[str, Any] = json.loads((root / "server.json").read_text(encoding="utf-8"))
        return ServerRecord(
            hostname=data["hostname"],
            provider=self.name,
            provider_id=str(root),
            status="running",
            address="127.0.0.1",
            zone=data.get("zone"),
            plan=data.get("plan"),
            labels=data.get("labels", {}),
            extra={"root": str(root), "created_at": data.get("created_at")},
        )

    def create_server(self, spec: ServerSpec) -> tuple[ServerRecord, bool]:
        root = server_dir(self.context, spec.hostname)
        if (root / "server.json").is_file():
            return self._record(root), False
        plan = spec.plan or "small"
        if plan not in {p["plan"] for p in PLANS}:
            raise ProviderError(
                ProviderErrorKind.INVALID,
                f"creating server {spec.hostname}: unknown plan {plan!r} "
                f"(local plans: {', '.join(p['plan'] for p in PLANS)})",
            )
        if spec.zone not in (None, "local"):
            raise ProviderError(
                ProviderErrorKind.INVALID,
                f"creating server {spec.hostname}: unknown zone {spec.zone!r} (local has 'local')",
            )
        try:
            for folder in LAYOUT:
                (root / folder).mkdir(parents=True, exist_ok=True)
            (root / "etc" / "hostname").write_text(spec.hostname + "\n")
            description = {
                "hostname": spec.hostname,
                "plan": plan,
                "zone": "local",
                "labels": spec.labels,
                "workspace": self.context.workspace,
                "infra": self.context.infra,
                "created_at": time.time(),
            }
            # server.json last: its presence is what makes the server exist.
            fd, temp = tempfile.mkstemp(dir=root, prefix=".server.", suffix=".json")
            with os.fdopen(fd, "w") as handle:
                handle.write(json.dumps(description, indent=2))
            os.replace(temp, root / "server.json")
        except OSError as exc:
            raise ProviderError(
                ProviderErrorKind.OTHER, f"creating server {spec.hostname} in {root}: {exc}"
            ) from None
        return self._record(root), True

    def delete_server(self, hostname: str) -> bool:
        root = server_dir(self.context, hostname)
        if not root.exists():
            return False
        stop_services(root)
        shutil.rmtree(root)
        return True

    def find_server(self, hostname: str) -> ServerRecord | None:
        root = server_dir(self.context, hostname)
        return self._record(root) if (root / "server.json").is_file() else None

    def list_servers(self) -> list[ServerRecord]:
        base = self.context.runtime_dir / "servers" / self.context.infra
        if not base.is_dir():
            return []
        return [self._record(p) for p in sorted(base.iterdir()) if (p / "server.json").is_file()]

    def plans(self) -> list[dict[str, Any]]:
        return [dict(p) for p in PLANS]

    def zones(self) -> list[dict[str, Any]]:
        return [{"zone": "local", "description": "this machine"}]

    def pricing(self) -> list[dict[str, Any]]:
        return [{"plan": p["plan"], "price_per_hour": 0.0, "currency": "EUR"} for p in PLANS]
