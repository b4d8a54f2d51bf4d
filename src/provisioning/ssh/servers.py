"""A recorded server of a workspace's infra -> an :class:`~.client.Ssh` to it."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from ..config import load_config
from ..infra import InfraError, load_infra, state
from .client import Ssh
from .endpoint import Endpoint, EndpointError, resolve


def known_hosts_file(workspace_dir: Path) -> Path:
    return workspace_dir / "runtime" / "known_hosts"


def endpoint_of(
    workspace_dir: Path,
    infra: str,
    hostname: str,
    record: dict[str, Any] | None = None,
    override: dict[str, Any] | None = None,
) -> Endpoint:
    """How to reach ``hostname``: its recorded address, the workspace's ``[ssh]``
    settings and the server's ``ssh`` block in the infra (``override``, when the
    caller has it: else the infra is read)."""
    if record is None:
        record = state.read_state(workspace_dir, infra)["servers"].get(hostname)
    if not record or not record.get("provider_id"):
        raise EndpointError(
            f"server {hostname} does not exist in infra {infra} "
            "(create it first: provisioning server create)"
        )
    settings = load_config(cwd=workspace_dir).settings.ssh.model_dump()
    if override is None:
        override = {}
        with contextlib.suppress(InfraError):
            server = load_infra(workspace_dir, infra).server(hostname)
            override = server.ssh.model_dump(exclude_none=True)
    return resolve(workspace_dir, infra, record, settings, override)


def connect(
    workspace_dir: Path, infra: str, hostname: str, override: dict[str, Any] | None = None
) -> Ssh:
    settings = load_config(cwd=workspace_dir).settings.ssh
    return Ssh(
        endpoint_of(workspace_dir, infra, hostname, override=override),
        known_hosts_file(workspace_dir),
        connect_timeout=settings.connect_timeout_seconds,
    )
