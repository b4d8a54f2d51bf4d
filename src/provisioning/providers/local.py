"""The ``local`` provider: a server is a *lab host* on this machine -- Linux
namespaces (network, mount, UTS, PID, IPC) running Debian's real ``sshd``, with an
address on the lab bridge (see :mod:`.lab`). Everything else reaches it over SSH,
as it would a cloud server.

``runtime/servers/<infra>/<hostname>/`` holds the host's overlay layers and
``host.json``; deleting the server kills the host's PID 1 (so every process in it)
and removes the folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..ssh.endpoint import workspace_key
from ..ssh.keys import ensure_key_pair
from .base import (
    HOSTNAME_RE,
    ProviderContext,
    ProviderError,
    ProviderErrorKind,
    ServerRecord,
    ServerSpec,
    not_in_catalogue,
)
from .lab import hosts
from .lab.network import LabNetworkError

PLANS: list[dict[str, Any]] = [
    {"plan": "small", "cores": 1, "memory_mb": 1024},
    {"plan": "medium", "cores": 2, "memory_mb": 4096},
    {"plan": "large", "cores": 4, "memory_mb": 8192},
]


def server_dir(context: ProviderContext, hostname: str) -> Path:
    """The server's folder; refuses any name that is not an RFC 1123 label (so no path
    can leave the workspace, whatever a caller passes)."""
    for label, value in (("hostname", hostname), ("infra", context.infra)):
        if not HOSTNAME_RE.fullmatch(value):
            raise ProviderError(
                ProviderErrorKind.INVALID, f"{label} {value!r} is not an RFC 1123 label"
            )
    return context.runtime_dir / "servers" / context.infra / hostname


class LocalProvider:
    """Lab hosts on this machine; no account needed."""

    name = "local"

    def __init__(self, context: ProviderContext) -> None:
        self.context = context

    def _record(self, root: Path, data: dict[str, Any]) -> ServerRecord:
        return ServerRecord(
            hostname=data["hostname"],
            provider=self.name,
            provider_id=str(root),
            status=hosts.state(root).value,
            address=data["address"],
            zone="local",
            plan=data.get("plan"),
            labels=data.get("labels", {}),
            extra={
                "root": str(root),
                "pid": data["pid"],
                "private_address": data["address"],
                "ssh_port": data["port"],
                "login_user": data.get("user", "root"),
                "host_key": data["host_key"],
                "created_at": data.get("created_at"),
                **({} if data.get("user", "root") == "root" else {"note": hosts.UNPRIVILEGED_NOTE}),
            },
        )

    def create_server(self, spec: ServerSpec) -> tuple[ServerRecord, bool]:
        root = server_dir(self.context, spec.hostname)
        try:
            hosts.check_privileges()
            hosts.sshd_binary()
        except hosts.LabHostError as exc:
            raise ProviderError(
                ProviderErrorKind.OTHER, f"creating server {spec.hostname}: {exc}"
            ) from None
        existing = hosts.read(root)
        if existing is not None and hosts.state(root) is not hosts.HostState.STOPPED:
            return self._record(root, existing), False
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
        if existing is not None:
            # Its host stopped (killed, or this machine rebooted): start a fresh one.
            hosts.destroy(root)
        keys = [*spec.ssh_keys, self._workspace_public_key()]
        address = self.context.settings.get("addresses", {}).get(spec.hostname)
        try:
            host = hosts.create(root, spec.hostname, "\n".join(keys) + "\n", address=address)
        except (hosts.LabHostError, LabNetworkError, OSError) as exc:
            hosts.destroy(root)
            raise ProviderError(
                ProviderErrorKind.OTHER, f"creating lab host {spec.hostname}: {exc}"
            ) from None
        data = hosts.read(root) or {}
        data.update({"plan": plan, "labels": spec.labels})
        hosts.write(root, data)
        return self._record(root, data), host.pid > 0

    def _workspace_public_key(self) -> str:
        private = workspace_key(self.context.workspace_dir)
        return ensure_key_pair(private, f"provisioning@{self.context.workspace}")

    def delete_server(self, hostname: str) -> bool:
        return hosts.destroy(server_dir(self.context, hostname))

    def find_server(self, hostname: str) -> ServerRecord | None:
        root = server_dir(self.context, hostname)
        data = hosts.read(root)
        return None if data is None else self._record(root, data)

    def resize_server(self, hostname: str, plan: str) -> ServerRecord:
        """Give an existing server another plan (a lab host shares this machine's
        hardware, so its record says the new plan)."""
        root = server_dir(self.context, hostname)
        if plan not in {p["plan"] for p in PLANS}:
            raise ProviderError(
                ProviderErrorKind.INVALID,
                f"resizing server {hostname}: unknown plan {plan!r} "
                f"(local plans: {', '.join(p['plan'] for p in PLANS)})",
            )
        data = hosts.read(root)
        if data is None:
            raise ProviderError(
                ProviderErrorKind.NOT_FOUND, f"resizing server {hostname}: no lab host in {root}"
            )
        data["plan"] = plan
        hosts.write(root, data)
        return self._record(root, data)

    def list_servers(self) -> list[ServerRecord]:
        base = self.context.runtime_dir / "servers" / self.context.infra
        if not base.is_dir():
            return []
        found = []
        for folder in sorted(base.iterdir()):
            data = hosts.read(folder)
            if data is not None:
                found.append(self._record(folder, data))
        return found

    def plans(self) -> list[dict[str, Any]]:
        return [dict(p) for p in PLANS]

    def zones(self) -> list[dict[str, Any]]:
        return [{"zone": "local", "description": "lab hosts on this machine"}]

    def check_spec(self, spec: ServerSpec) -> list[str]:
        plans = (p["plan"] for p in PLANS)
        return [
            *not_in_catalogue("plan", spec.plan, plans, self.name),
            *not_in_catalogue("zone", spec.zone, ["local"], self.name),
        ]

    def pricing(self) -> list[dict[str, Any]]:
        return [{"plan": p["plan"], "price_per_hour": 0.0, "currency": "EUR"} for p in PLANS]
