"""The provider interface: one class per cloud (or the local machine), same verbs.

The seed's provider verbs map as: ``create-servers`` -> :meth:`Provider.create_server`,
``delete-servers`` -> :meth:`Provider.delete_server`, ``list-servers`` ->
:meth:`Provider.list_servers`, ``get-server-plans`` -> :meth:`Provider.plans`,
``get-regions`` -> :meth:`Provider.zones`, ``get-pricing`` -> :meth:`Provider.pricing`.
Servers are identified by *hostname* within a workspace + infra: every provider
tags what it creates with both, so ``list`` and ``delete`` find exactly ours.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

HOSTNAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


class ProviderErrorKind(StrEnum):
    AUTH = "auth"  # bad or missing credentials
    QUOTA = "quota"  # account limit reached
    INVALID = "invalid"  # unknown plan, zone, image...
    UNAVAILABLE = "unavailable"  # the API cannot be reached or answers 5xx
    NOT_FOUND = "not_found"
    OTHER = "other"


class ProviderError(Exception):
    """A provider call failed; ``kind`` classifies it, the message says what happened
    in the provider's own words plus what was being done."""

    def __init__(self, kind: ProviderErrorKind, message: str) -> None:
        super().__init__(message)
        self.kind = kind

    def __str__(self) -> str:
        return f"{self.kind}: {self.args[0]}"


@dataclass(frozen=True)
class ServerSpec:
    """A server as the infra definition asks for it (already validated by the contract)."""

    hostname: str
    provider: str = "local"
    plan: str | None = None
    cores: int | None = None
    memory_mb: int | None = None
    storage_gb: int | None = None
    zone: str | None = None
    image: str | None = None
    login_user: str | None = None
    ssh_keys: tuple[str, ...] = ()
    labels: dict[str, str] = field(default_factory=dict)
    taskservs: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not HOSTNAME_RE.fullmatch(self.hostname):
            raise ValueError(f"hostname {self.hostname!r} is not an RFC 1123 label")


@dataclass(frozen=True)
class ServerRecord:
    """A server as the provider reports it."""

    hostname: str
    provider: str
    provider_id: str
    status: str  # provider's words: "running", "started", "pending", "stopped", ...
    address: str | None = None
    zone: str | None = None
    plan: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "hostname": self.hostname,
            "provider": self.provider,
            "provider_id": self.provider_id,
            "status": self.status,
            "address": self.address,
            "zone": self.zone,
            "plan": self.plan,
            "labels": dict(self.labels),
            "extra": dict(self.extra),
        }


@dataclass(frozen=True)
class ProviderContext:
    """Where a provider works: the workspace and infra whose servers it manages, and
    the provider's own settings from the workspace configuration."""

    workspace: str
    workspace_dir: Path
    infra: str
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def runtime_dir(self) -> Path:
        return self.workspace_dir / "runtime"


class CloudProvider:
    """What a cloud's provider keeps: where it works, a copy of its settings, and its
    API client, made on first use (``plans()`` needs no account)."""

    def __init__(self, context: ProviderContext) -> None:
        self.context = context
        self.settings: dict[str, Any] = dict(context.settings)
        self._api: Any = None


class Provider(Protocol):
    """What every provider does. Calls are blocking; they run inside a task's process."""

    name: str

    def create_server(self, spec: ServerSpec) -> tuple[ServerRecord, bool]:
        """Create ``spec`` and wait until it runs; ``(record, False)`` when a server with
        that hostname already exists (creating what exists is a no-op)."""

    def delete_server(self, hostname: str) -> bool:
        """Delete the server and wait until it is gone; ``False`` when there was none."""

    def find_server(self, hostname: str) -> ServerRecord | None: ...

    def list_servers(self) -> list[ServerRecord]:
        """Servers of this workspace and infra only."""

    def check_spec(self, spec: ServerSpec) -> list[str]:
        """The values of ``spec`` this provider would refuse on create (an unknown plan
        or zone), one line each; asks the provider's API where the catalogue lives there."""

    def plans(self) -> list[dict[str, Any]]: ...

    def zones(self) -> list[dict[str, Any]]: ...

    def pricing(self) -> list[dict[str, Any]]: ...


def not_in_catalogue(
    label: str, value: str | None, known: Iterable[str], provider: str
) -> list[str]:
    """``[]`` when ``value`` is unset or one of ``known``; else the one line that says so."""
    names = sorted(set(known))
    if value is None or value in names:
        return []
    return [f"{label} {value!r} is unknown to {provider} (known {label}s: {', '.join(names)})"]
