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

from ..config import LoadedConfig, load_config
from ..infra import InfraError, load_infra, state
from ..infra.models import ServerDef
from ..providers import ProviderContext, ProviderError, ProviderErrorKind, get_provider
from ..providers.base import HOSTNAME_RE, ServerRecord
from ..ssh import EndpointError, SshError, wait_for_ssh
from ..ssh import known_hosts as host_keys
from ..ssh.servers import connect, endpoint_of, known_hosts_file
from ..tasks import EXIT_PERMANENT, emit


def _progress(value: int, message: str) -> None:
    emit(f"PROGRESS: {value} {message}")


SECRET_KEYS = frozenset(
    {"password", "token", "secret_access_key", "aws_secret_access_key", "api_key"}
)


def _guard_credentials(loaded: LoadedConfig, provider: str) -> None:
    """Provider credentials come from the environment or from a file only its owner
    can read: a readable configuration file holding one is refused."""
    held = SECRET_KEYS & set(getattr(loaded.settings.providers, provider, {}))
    source = loaded.sources.get(f"providers.{provider}", "").rsplit(":", 1)[0]
    if not held or not source.startswith("/"):
        return
    try:
        mode = Path(source).stat().st_mode
    except OSError:
        return
    if mode & 0o077:
        print(
            f"{source}: providers.{provider}.{sorted(held)[0]} is a credential in a file others "
            f"can read; chmod 600 {source}, or give it through the provider's environment "
            "variables instead",
            file=sys.stderr,
            flush=True,
        )
        raise SystemExit(2)


def _context(params: dict[str, Any], provider: str) -> ProviderContext:
    workspace_dir = Path(params["workspace_dir"])
    loaded = load_config(cwd=workspace_dir)
    _guard_credentials(loaded, provider)
    settings = loaded.settings
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


# What no retry can fix: the task fails at once (the contract's EXIT_PERMANENT).
PERMANENT_KINDS = frozenset({ProviderErrorKind.INVALID, ProviderErrorKind.AUTH})


def _fail(error: ProviderError) -> None:
    # The task's error is the stderr tail: say it in one clear line.
    print(f"provider error: {error}", file=sys.stderr, flush=True)
    raise SystemExit(EXIT_PERMANENT if error.kind in PERMANENT_KINDS else 1)


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
    resized = None
    if not created and server.plan and record.plan and server.plan != record.plan:
        resized = [record.plan, server.plan]
        record = _resize(provider, hostname, record.plan, server.plan)
    infra = str(params["infra"])
    recorded = record.as_dict()
    if recorded["extra"].get("note"):
        print(f"notice: server {hostname}: {recorded['extra']['note']}", file=sys.stderr)
    _await_ssh(workspace_dir, infra, recorded, created=created)
    state.record_server(workspace_dir, infra, recorded)
    if resized:
        _progress(100, f"{hostname} resized: plan {resized[0]} -> {resized[1]}")
    else:
        _progress(100, f"{hostname} {'created' if created else 'already exists'}")
    return {
        "hostname": hostname,
        "created": created,
        "changed": created or resized is not None,
        "resized": resized,
        "server": recorded,
    }


def _await_ssh(workspace_dir: Path, infra: str, record: dict[str, Any], *, created: bool) -> None:
    """Record the host key the provider offers, then wait until SSH answers. A server
    made now has new keys: what was recorded under its name before is forgotten."""
    ssh = load_config(cwd=workspace_dir).settings.ssh
    if ssh.wait_seconds == 0:
        return
    hostname = str(record["hostname"])
    try:
        endpoint = endpoint_of(workspace_dir, infra, hostname, record)
        offered = (record.get("extra") or {}).get("host_key")
        if created:
            host_keys.forget(known_hosts_file(workspace_dir), endpoint.host_key_alias)
        if offered:
            host_keys.record(known_hosts_file(workspace_dir), endpoint.host_key_alias, offered)
        waited = wait_for_ssh(
            endpoint,
            known_hosts_file(workspace_dir),
            timeout=ssh.wait_seconds,
            progress=lambda message: _progress(60, message),
        )
    except (EndpointError, SshError) as exc:
        print(str(exc), file=sys.stderr, flush=True)
        raise SystemExit(1) from None
    _progress(90, f"SSH answers on {endpoint.address}:{endpoint.port} ({waited:.1f}s)")


def _resize(provider: Any, hostname: str, old: str, new: str) -> ServerRecord:
    """Apply a changed plan (``~ update``) where the provider can resize a server in
    place; where it cannot, say so (a permanent error: no retry would help)."""
    resize = getattr(provider, "resize_server", None)
    if resize is None:
        print(
            f"{provider.name} cannot change the plan of {hostname} in place ({old} -> {new}): "
            f"delete and create it (provisioning server delete {hostname}, then create)",
            file=sys.stderr,
            flush=True,
        )
        raise SystemExit(EXIT_PERMANENT)
    _progress(50, f"resizing {hostname}: plan {old} -> {new}")
    try:
        resized: ServerRecord = resize(hostname, new)
    except ProviderError as exc:
        _fail(exc)
        raise
    return resized


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
    if recorded.get("provider_id"):
        # The shared SSH connection to it goes first (it would linger until timeout).
        with contextlib.suppress(EndpointError, SshError, OSError):
            connect(workspace_dir, infra, hostname).close()
    try:
        deleted = provider.delete_server(hostname)
    except ProviderError as exc:
        _fail(exc)
        raise
    state.forget_server(workspace_dir, infra, hostname)
    # A server made again under this name has new host keys.
    host_keys.forget(known_hosts_file(workspace_dir), host_keys.alias(infra, hostname))
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
