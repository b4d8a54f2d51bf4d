"""Handlers of the platform's server operations, run by the Python runner in a fresh
interpreter (``provisioning.operations.handlers`` + function): the same code in
direct mode and on the orchestrator.

Parameters: ``workspace_dir``, ``infra``, and the server's hostname as ``hostname``
or ``item`` (when the operation fans out over servers).
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..config import load_config
from ..infra import InfraError, load_infra, state
from ..infra.models import ServerDef
from ..providers import ProviderContext, ProviderError, get_provider
from ..providers.base import HOSTNAME_RE
from ..tasks import emit


def _progress(value: int, message: str) -> None:
    emit(f"PROGRESS: {value} {message}")


def _context(params: dict[str, Any], provider: str) -> ProviderContext:
    workspace_dir = Path(params["workspace_dir"])
    settings = load_config(cwd=workspace_dir).settings
    return ProviderContext(
        workspace=settings.workspace.name or workspace_dir.name,
        workspace_dir=workspace_dir,
        infra=str(params["infra"]),
        settings=dict(getattr(settings.providers, provider, {})),
    )


def _hostname(params: dict[str, Any]) -> str:
    item = params.get("item")
    # An item is a hostname, or (the original's server_configs) a whole server definition.
    named = item.get("hostname") if isinstance(item, dict) else item
    hostname = str(params.get("hostname") or named)
    if not HOSTNAME_RE.fullmatch(hostname):
        print(f"hostname {hostname!r} is not an RFC 1123 label", file=sys.stderr)
        raise SystemExit(2)
    return hostname


def _fail(error: ProviderError) -> None:
    # The task's error is the stderr tail: say it in one clear line.
    print(f"provider error: {error}", file=sys.stderr, flush=True)
    raise SystemExit(1)


def _definition(params: dict[str, Any], workspace_dir: Path, hostname: str) -> ServerDef:
    """The server as the task gives it (a batch's server_configs) or as the infra defines it."""
    item = params.get("item")
    if isinstance(item, dict):
        try:
            return ServerDef.model_validate(item)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "server"
            print(f"server {hostname}: {where}: {first['msg']}", file=sys.stderr)
            raise SystemExit(2) from None
    return load_infra(workspace_dir, str(params["infra"])).server(hostname)


def server_create(params: dict[str, Any]) -> dict[str, Any]:
    """Create one server of the infra (a no-op, reported, when it exists)."""
    hostname = _hostname(params)
    workspace_dir = Path(params["workspace_dir"])
    server = _definition(params, workspace_dir, hostname)
    provider = get_provider(server.provider, _context(params, server.provider))
    _progress(10, f"creating {hostname} on {server.provider}")
    try:
        record, created = provider.create_server(server.spec())
    except ProviderError as exc:
        _fail(exc)
        raise
    state.record_server(workspace_dir, str(params["infra"]), record.as_dict())
    _progress(100, f"{hostname} {'created' if created else 'already exists'}")
    return {"hostname": hostname, "created": created, "server": record.as_dict()}


def server_delete(params: dict[str, Any]) -> dict[str, Any]:
    """Delete one server (stopping what runs on it); a no-op when it is absent."""
    hostname = _hostname(params)
    workspace_dir = Path(params["workspace_dir"])
    infra = str(params["infra"])
    recorded = state.read_state(workspace_dir, infra)["servers"].get(hostname, {})
    # The provider that made it (recorded) wins; the definition may be gone already.
    provider_name = recorded.get("provider")
    if not provider_name:
        with contextlib.suppress(InfraError):
            provider_name = load_infra(workspace_dir, infra).server(hostname).provider
    provider_name = provider_name or "local"
    provider = get_provider(provider_name, _context(params, provider_name))
    _progress(10, f"deleting {hostname} on {provider_name}")
    try:
        deleted = provider.delete_server(hostname)
    except ProviderError as exc:
        _fail(exc)
        raise
    state.forget_server(workspace_dir, infra, hostname)
    _progress(100, f"{hostname} {'deleted' if deleted else 'did not exist'}")
    return {"hostname": hostname, "deleted": deleted}


def server_check(params: dict[str, Any]) -> dict[str, Any]:
    """Report whether one server exists and in what state; changes nothing."""
    hostname = _hostname(params)
    workspace_dir = Path(params["workspace_dir"])
    server = load_infra(workspace_dir, str(params["infra"])).server(hostname)
    provider = get_provider(server.provider, _context(params, server.provider))
    try:
        record = provider.find_server(hostname)
    except ProviderError as exc:
        _fail(exc)
        raise
    return {
        "hostname": hostname,
        "exists": record is not None,
        "server": None if record is None else record.as_dict(),
    }
