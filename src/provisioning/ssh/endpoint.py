"""Where and how to reach one server: from its recorded address, the workspace's
``[ssh]`` settings and the server's own ``ssh`` block in the infra (most specific
wins)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .known_hosts import alias

DEFAULT_USERS = {"local": "root", "aws": "admin", "upcloud": "provisioning"}


class EndpointError(Exception):
    """A server has no address to reach it at; the message says which and why."""


@dataclass(frozen=True)
class Endpoint:
    server: str  # the server's hostname: names it in every message
    infra: str
    address: str
    port: int = 22
    user: str = "root"
    key: Path | None = None
    jump: str | None = None
    use_sudo: bool = False

    @property
    def host_key_alias(self) -> str:
        return alias(self.infra, self.server)

    @property
    def target(self) -> str:
        return f"{self.user}@{self.address}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "port": self.port,
            "user": self.user,
            "key": None if self.key is None else str(self.key),
            "jump": self.jump,
            "use_sudo": self.use_sudo,
        }


def workspace_key(workspace_dir: Path) -> Path:
    """The workspace's own key pair (made by ``workspace init``)."""
    return workspace_dir / "runtime" / "keys" / "id_ed25519"


def resolve(
    workspace_dir: Path,
    infra: str,
    record: Mapping[str, Any],
    settings: Mapping[str, Any],
    override: Mapping[str, Any] | None = None,
) -> Endpoint:
    """The endpoint of a server as recorded (``record``: its provider's report)."""
    chosen = {**{k: v for k, v in settings.items() if v not in ("", None)}}
    chosen.update({k: v for k, v in (override or {}).items() if v not in ("", None)})
    hostname = str(record["hostname"])
    extra = record.get("extra") or {}
    which = str(chosen.get("address", "public"))
    if which == "private":
        address = extra.get("private_address") or extra.get("private_ip") or None
    elif which == "public":
        address = record.get("address")
    else:
        address = which  # an explicit address or name
    if not address:
        raise EndpointError(
            f"server {hostname}: no {which} address recorded (status "
            f"{record.get('status', 'unknown')}); set ssh.address in the infra or workspace"
        )
    key = chosen.get("key")
    provider = str(record.get("provider", "local"))
    return Endpoint(
        server=hostname,
        infra=infra,
        address=str(address),
        port=int(chosen.get("port") or extra.get("ssh_port") or 22),
        user=str(
            chosen.get("user") or extra.get("login_user") or DEFAULT_USERS.get(provider, "root")
        ),
        key=Path(str(key)).expanduser() if key else workspace_key(workspace_dir),
        jump=str(chosen["jump"]) if chosen.get("jump") else None,
        use_sudo=bool(chosen.get("use_sudo", False)),
    )
