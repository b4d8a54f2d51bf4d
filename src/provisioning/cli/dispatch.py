"""Getting an operation to where it runs: find (or start) the orchestrator, check its
version, or fall back to direct mode, as ``[orchestrator]`` configures."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, NamedTuple
from urllib.parse import urlsplit

from ..client import ClientError, OrchestratorClient
from ..config import ExecutionMode
from .common import (
    EXIT_FAILED,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    State,
    connect,
    err,
    fail,
    notify,
    probe,
)
from .modes import Decision, resolve

if TYPE_CHECKING:
    from ..config import Settings


class Route(NamedTuple):
    """Where an operation goes: a client of a healthy orchestrator, or direct mode."""

    decision: Decision
    client: OrchestratorClient | None = None

    @property
    def direct(self) -> bool:
        return self.client is None


def _is_local(settings: Settings) -> bool:
    """Whether ``endpoint`` is the daemon that ``[server]`` would start here."""
    parts = urlsplit(settings.orchestrator.endpoint)
    host = parts.hostname or ""
    loopback = host in ("localhost", "::1") or host.startswith("127.")
    return loopback and (parts.port or 80) == settings.server.port


def _healthy(settings: Settings) -> OrchestratorClient | None:
    health = probe(settings)
    return None if health is None else connect(settings, health)


def answering(state: State) -> OrchestratorClient | None:
    """A token-bearing client when the orchestrator is enabled, answers and accepts this
    CLI; ``None`` otherwise, without a word (:func:`route` then says why)."""
    settings = state.loaded.settings
    if not settings.orchestrator.enabled:
        return None
    from .. import compat

    try:
        health = OrchestratorClient(settings.orchestrator.endpoint, None, 5).health()
        compat.check(health)
        return OrchestratorClient.from_settings(settings)
    except (ClientError, compat.Incompatible):
        return None


def _auto_start(state: State) -> str | None:
    """Start the daemon with this configuration; ``None`` on success, else why not."""
    settings = state.loaded.settings
    if not _is_local(settings):
        return f"{settings.orchestrator.endpoint} is not this machine's [server] address"
    from rich.text import Text

    err.print(Text(f"Starting orchestrator at {settings.orchestrator.endpoint} ..."))
    import subprocess

    argv = [sys.executable, "-m", "provisioning.orchestrator.daemon", "--daemon"]
    if state.config_file is not None:
        argv += ["--config", str(state.config_file)]
    try:
        started = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=settings.orchestrator.timeout_seconds + 5,
            env=os.environ.copy(),
            check=False,
        )
    except subprocess.TimeoutExpired:
        return f"it did not start within {settings.orchestrator.timeout_seconds:g} s"
    if started.returncode != 0:
        detail = (started.stderr or started.stdout).strip().splitlines()
        return detail[-1] if detail else f"exit code {started.returncode}"
    return None


def route(
    state: State,
    operation: str,
    *,
    orchestrated: bool = False,
    direct: bool = False,
    only_orchestrated: bool = False,
) -> Route:
    """Resolve the mode of ``operation`` and make it runnable there. An operation that
    ``only_orchestrated`` can run never falls back to direct mode."""
    settings = state.loaded.settings
    if only_orchestrated:
        orchestrated, direct = True, False
    try:
        decision = resolve(operation, settings.execution, orchestrated=orchestrated, direct=direct)
    except ValueError as exc:
        fail(str(exc), EXIT_USAGE)
    if decision.mode is ExecutionMode.DIRECT:
        return Route(decision)
    if not settings.orchestrator.enabled:
        if orchestrated:
            why = f"{operation} runs only on" if only_orchestrated else "--orchestrated:"
            fail(
                f"{why} the orchestrator, which is disabled (orchestrator.enabled = false)",
                EXIT_USAGE,
            )
        return Route(Decision(ExecutionMode.DIRECT, "orchestrator.enabled = false"))

    client = _healthy(settings)
    if client is not None:
        return Route(decision, client)
    endpoint = settings.orchestrator.endpoint
    why = f"no orchestrator answers at {endpoint}"
    if settings.orchestrator.auto_start:
        problem = _auto_start(state)
        if problem is None:
            client = _healthy(settings)
            if client is not None:
                return Route(decision, client)
            problem = "it started but does not answer"
        why = f"{why}, and it could not be started: {problem}"
    else:
        why = f"{why} (orchestrator.auto_start = false)"
    if settings.orchestrator.fallback_to_direct and not orchestrated:
        notify(f"{why}; running {operation} directly (orchestrator.fallback_to_direct)")
        return Route(Decision(ExecutionMode.DIRECT, "fallback_to_direct"))
    fail(
        f"{why}. Start it with: provisioning orchestrator start --daemon",
        EXIT_UNREACHABLE,
    )


__all__ = ["EXIT_FAILED", "Route", "route"]
