"""What every command group shares: configuration, output, errors and exit codes.

Exit codes: 0 success; 1 the work failed or the orchestrator refused; 2 bad
usage or configuration; 3 the orchestrator cannot be reached.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.text import Text

from .. import compat
from ..client import ClientError, OrchestratorClient, Unreachable
from ..config import ConfigError, LoadedConfig, Settings, load_config

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3

# markup=False: names, errors and log lines come from data and may hold '[...]'; the
# CLI's own styling goes through Text objects.
out = Console(highlight=False, soft_wrap=True, markup=False)
err = Console(stderr=True, highlight=False, soft_wrap=True, markup=False)


@dataclass
class State:
    """Per-invocation state, built lazily from the global options."""

    config_file: Path | None = None
    flags: dict[str, Any] = field(default_factory=dict)
    _loaded: LoadedConfig | None = None

    @property
    def loaded(self) -> LoadedConfig:
        if self._loaded is None:
            try:
                self._loaded = load_config(flags=self.flags, extra_file=self.config_file)
            except ConfigError as exc:
                fail(str(exc), EXIT_USAGE)
        return self._loaded

    def client(self, *, check_version: bool = True) -> OrchestratorClient:
        """A client of a reachable, compatible orchestrator; exits 3 when none answers,
        1 when it is incompatible, 2 when its token cannot be read."""
        settings = self.loaded.settings
        health = probe(settings)
        if health is None:
            client_failure(
                Unreachable(f"no orchestrator answers at {settings.orchestrator.endpoint}")
            )
        return connect(settings, health, check_version=check_version)


def probe(settings: Settings) -> dict[str, Any] | None:
    """The orchestrator's ``/health``, or ``None`` when nothing answers."""
    client = OrchestratorClient(settings.orchestrator.endpoint, None, 5)
    try:
        return client.health()
    except Unreachable:
        return None
    except ClientError as exc:
        fail(f"the orchestrator at {settings.orchestrator.endpoint} is unhealthy: {exc}")
    finally:
        client.close()


def connect(
    settings: Settings, health: dict[str, Any], *, check_version: bool = True
) -> OrchestratorClient:
    """A token-bearing client, once the version matrix accepts the orchestrator."""
    if check_version:
        try:
            compat.check(health)
        except compat.Incompatible as exc:
            fail(f"refusing to use the orchestrator at {settings.orchestrator.endpoint}: {exc}")
    try:
        return OrchestratorClient.from_settings(settings)
    except ClientError as exc:
        fail(str(exc), EXIT_USAGE)


def state(ctx: typer.Context) -> State:
    found = ctx.find_object(State)
    if found is None:
        found = ctx.ensure_object(State)
    return found


def fail(message: str, code: int = EXIT_FAILED) -> NoReturn:
    notify(message, "error")
    raise typer.Exit(code)


def notify(message: str, label: str = "notice") -> None:
    """One message on stderr; the text is shown verbatim, never read as markup."""
    style = "bold red" if label == "error" else "yellow"
    err.print(Text.assemble((f"{label}:", style), " ", message))


def client_failure(exc: ClientError) -> NoReturn:
    if isinstance(exc, Unreachable):
        fail(f"{exc}; start it with: provisioning orchestrator start --daemon", EXIT_UNREACHABLE)
    fail(str(exc), EXIT_FAILED)


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, default=str) + "\n")


STATUS_STYLE = {
    "pending": "yellow",
    "running": "cyan",
    "completed": "green",
    "failed": "red",
    "cancelled": "magenta",
    "timed_out": "red",
}


def styled_status(status: str) -> Text:
    return Text(status, style=STATUS_STYLE.get(status, "white"))


def styled(*parts: str | Text | tuple[str, str]) -> Text:
    """Text from plain strings (never read as markup), Text, and (text, style) pairs."""
    return Text.assemble(*parts)
