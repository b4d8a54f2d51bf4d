"""What every command group shares: configuration, ids, errors and exit codes
(``exits.py``); the options they share are in ``options.py`` (Typer's)."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

from ..client import ClientError, OrchestratorClient, TimedOut, Unauthorized, Unreachable
from ..config import ConfigError, LoadedConfig, load_config
from . import output
from .exits import EXIT_FAILED, EXIT_UNREACHABLE, EXIT_USAGE
from .output import BadFormat, Format, Part, choose_format, status_part

if TYPE_CHECKING:
    import typer
    from rich.console import Console
    from rich.text import Text

    from ..config import Settings

__all__ = ["EXIT_FAILED", "EXIT_UNREACHABLE", "EXIT_USAGE", "Format"]

T = TypeVar("T")


class State:
    """Per-invocation state, built lazily from the global options. (A plain class, as
    the others on the quick path: ``dataclasses`` imports ``inspect``, ~10 ms.)"""

    def __init__(
        self, config_file: Path | None = None, flags: dict[str, Any] | None = None
    ) -> None:
        self.config_file = config_file
        self.flags: dict[str, Any] = {} if flags is None else flags
        self._loaded: LoadedConfig | None = None
        # Each provider a command asks, made once: (infra, provider name) -> provider.
        self.providers: dict[tuple[str, str], Any] = {}

    @property
    def loaded(self) -> LoadedConfig:
        if self._loaded is None:
            try:
                self._loaded = load_config(
                    flags=self.flags, extra_file=self.config_file, lazy_model=True
                )
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
        client_failure(exc)
    finally:
        client.close()


def connect(
    settings: Settings, health: dict[str, Any], *, check_version: bool = True
) -> OrchestratorClient:
    """A token-bearing client, once the version matrix accepts the orchestrator."""
    from .. import compat

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
    # Not typer.Exit, which would import Typer: the quick entry runs without it, and
    # Click lets SystemExit through to the same exit code.
    raise SystemExit(code)


def notify(message: str, label: str = "notice") -> None:
    """One message on stderr; data in it never reaches a terminal as control codes."""
    output.notice(message, label)


def client_failure(exc: ClientError) -> NoReturn:
    """Exit with the code of what went wrong (``exits.py``)."""
    if isinstance(exc, Unreachable):
        fail(f"{exc}; start it with: provisioning orchestrator start --daemon", EXIT_UNREACHABLE)
    if isinstance(exc, TimedOut):
        fail(str(exc), EXIT_UNREACHABLE)
    if isinstance(exc, Unauthorized):
        fail(str(exc), EXIT_USAGE)
    if exc.status in (400, 404, 422):
        fail(str(exc), EXIT_USAGE)
    fail(str(exc), EXIT_FAILED)


def output_format(output_: str | None, json_out: bool) -> Format:
    try:
        return choose_format(output_, json_out)
    except BadFormat as exc:
        fail(str(exc), EXIT_USAGE)


def print_json(value: Any) -> None:
    output.data(value)


def _whole(fmt: Format) -> bool:
    """Whole values with ``-o wide`` and on a pipe (where nothing is cut); a terminal
    gets the short forms."""
    return fmt is Format.WIDE or not output.is_terminal(sys.stdout)


def when(timestamp: str | None, fmt: Format = Format.TABLE) -> str:
    """A timestamp for a table: to the second, without the zone (whole, see ``_whole``)."""
    if not timestamp:
        return ""
    if _whole(fmt):
        return timestamp
    return timestamp.replace("T", " ")[:19]


def shown_id(value: str, fmt: Format) -> str:
    """An id for a table: its first 8 characters, any unique prefix being accepted back
    (whole, see ``_whole``)."""
    return value if _whole(fmt) else output.short_id(value)


# -- ids: full UUIDs or unique prefixes of at least 4 hex digits, like git's ---------------

ID_RE = re.compile(r"[0-9a-f][0-9a-f-]{3,35}")
FULL_ID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
PAGE = 1000


def resolve_id(client: OrchestratorClient, kind: str, given: str) -> str:
    """The full id of the task or workflow ``given`` names: a whole id, or a prefix
    of one (what tables show) matching exactly one. Exits 2 otherwise."""
    wanted = given.strip().lower()
    if FULL_ID_RE.fullmatch(wanted):
        return wanted
    if not ID_RE.fullmatch(wanted):
        fail(
            f"{given!r} is not a {kind} id (a UUID, or at least its first 4 hex digits)",
            EXIT_USAGE,
        )
    matches: list[str] = []
    offset = 0
    try:
        while len(matches) < 2:
            if kind == "task":
                tasks = client.tasks(limit=PAGE, offset=offset)
                ids, total = [t["id"] for t in tasks["tasks"]], tasks["total"]
            else:
                workflows = client.workflows(limit=PAGE, offset=offset)
                ids, total = [w["id"] for w in workflows["workflows"]], workflows["total"]
            matches += [found for found in ids if found.startswith(wanted)]
            offset += len(ids)
            if not ids or offset >= total:
                break
    except ClientError as exc:
        client_failure(exc)
    if not matches:
        fail(f"no {kind} id starts with {given!r}", EXIT_USAGE)
    if len(matches) > 1:
        fail(
            f"{kind} id {given!r} is ambiguous: it starts {', '.join(matches[:2])} ...; "
            "give more characters",
            EXIT_USAGE,
        )
    return matches[0]


# -- Rich, for the live monitor and pretty results only (imported when used) ----------------


class _LazyConsole:
    """A Rich console created on first use, so commands that never print through
    Rich never import it."""

    def __init__(self, stderr: bool) -> None:
        self._stderr = stderr
        self._console: Console | None = None

    def real(self) -> Console:
        if self._console is None:
            self.__getattr__("is_terminal")
        assert self._console is not None
        return self._console

    def __getattr__(self, name: str) -> Any:
        if self._console is None:
            from rich.console import Console

            # markup=False: names, errors and log lines come from data and may hold '[...]'.
            self._console = Console(
                stderr=self._stderr, highlight=False, soft_wrap=True, markup=False
            )
        return getattr(self._console, name)


out: Any = _LazyConsole(stderr=False)
err: Any = _LazyConsole(stderr=True)


def styled_status(status: str) -> Text:
    from rich.text import Text

    text, style = status_part(status)
    return Text(text, style=style or "white")


def styled(*parts: str | Text | tuple[str, str]) -> Text:
    """Rich text from plain strings (never read as markup), Text, and (text, style) pairs."""
    from rich.text import Text

    return Text.assemble(*parts)


def say(*parts: Part) -> None:
    output.line(*parts)


def fetched(
    ctx: typer.Context, kind: str, given: str, get: Callable[[OrchestratorClient, str], T]
) -> T:
    """``get`` the task or workflow ``given`` names (see :func:`resolve_id`); a failure
    exits."""
    client = state(ctx).client()
    try:
        return get(client, resolve_id(client, kind, given))
    except ClientError as exc:
        client_failure(exc)


def shown(value: T, fmt: Format, human: Callable[[T, Format], None]) -> None:
    """``value`` as data in a machine format, else as ``human`` says it."""
    if fmt.machine:
        output.data(value, fmt)
    else:
        human(value, fmt)
