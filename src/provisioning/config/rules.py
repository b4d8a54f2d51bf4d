"""The configuration's own rules, in plain Python: the enums, the checks a type and a
range cannot say, and the paths derived from the settings.

Written once, used twice: the pydantic models (``models.py``) call these functions from
their validators, and the CLI's quick path (``quick.py``) calls the same ones without
importing pydantic."""

from __future__ import annotations

import functools
import re
import sys
from collections.abc import Callable
from enum import StrEnum
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, Protocol

PACKAGED_NULIB = Path(__file__).resolve().parent.parent / "nulib"


@functools.lru_cache(maxsize=32)
def _real(path: Path) -> Path:
    # Asked for every task (its NU_LIB_DIRS): two realpaths were a fifth of the daemon's
    # time from claim to request. A library folder is not re-linked under a running daemon.
    return path.resolve()


class ExecutionMode(StrEnum):
    DIRECT = "direct"
    ORCHESTRATED = "orchestrated"
    AUTO = "auto"


class StorageBackend(StrEnum):
    SQLITE = "sqlite"
    POSTGRES = "postgres"
    SURREALDB = "surrealdb"


# By the title the JSON schema gives them (``settings.schema.json``).
ENUMS: dict[str, type[StrEnum]] = {
    "ExecutionMode": ExecutionMode,
    "StorageBackend": StorageBackend,
}


def http_url(value: str) -> str:
    if not value.startswith(("http://", "https://")):
        raise ValueError("expected an http:// or https:// URL")
    return value.rstrip("/")


def http_url_or_empty(value: str) -> str:
    if value and not value.startswith(("http://", "https://")):
        raise ValueError("expected an http:// or https:// URL, or empty (no traces)")
    return value


def memory_size(value: str) -> str:
    if value and not re.fullmatch(r"[0-9]+[KMGT]?", value):
        raise ValueError("expected a size: bytes, or a number with K, M, G or T")
    return value


# The checks of single values, by the name the JSON schema records them under ("x-rule").
FIELD_RULES: dict[str, Callable[[Any], Any]] = {
    rule.__name__: rule for rule in (http_url, http_url_or_empty, memory_size)
}


# The CLI's operation names (DESIGN.md §5), against which the two force lists are checked.
_VERBS = {
    "server": ("create", "list", "show", "delete", "ssh"),
    "taskserv": ("create", "list", "show", "delete"),
    "cluster": ("create", "list", "show", "delete"),
    "workflow": ("submit", "status", "monitor", "list", "cancel", "retry", "rollback"),
    "batch": ("submit", "monitor", "status", "list", "rollback", "stats"),
    "task": ("submit", "list", "status", "logs", "cancel"),
    "orchestrator": ("start", "stop", "status", "logs"),
    "provider": ("list", "plans", "zones", "pricing"),
}
OPERATIONS = (
    *(f"{group}.{verb}" for group, verbs in _VERBS.items() for verb in verbs),
    "help",
    "version",
    "env",
)


def _specificity(operation: str, pattern: str) -> tuple[bool, int]:
    return (pattern == operation, len(pattern.replace("*", "")))


def no_tie(orchestrated: list[str], direct: list[str]) -> list[str]:
    """An operation both lists match equally is refused here: neither may silently
    win. (A strictly more specific pattern decides, as ``provisioning -v`` shows:
    the seed's ``batch.*`` over ``*.list`` for ``batch.list``.)"""
    literal = {p for p in (*orchestrated, *direct) if not any(c in p for c in "*?[")}
    for name in sorted(set(OPERATIONS) | literal):
        orch = [p for p in orchestrated if fnmatchcase(name, p)]
        here = [p for p in direct if fnmatchcase(name, p)]
        if not orch or not here:
            continue
        best_orch = max(orch, key=lambda p: _specificity(name, p))
        best_direct = max(here, key=lambda p: _specificity(name, p))
        if _specificity(name, best_orch) == _specificity(name, best_direct):
            raise ValueError(
                f"{name} is matched by force_orchestrated {best_orch!r} and force_direct "
                f"{best_direct!r} alike; remove one or make one more specific"
            )
    return direct


def storage_seed_names(data: object) -> object:
    """The seed calls the embedded single-file store "filesystem"; the original names
    SurrealDB's two modes in the backend itself. (Runs before the section's types.)"""
    if not isinstance(data, dict):
        return data
    value = data.get("backend")
    if value == "filesystem":
        return {**data, "backend": StorageBackend.SQLITE.value}
    if value in ("surrealdb-embedded", "surrealdb-server"):
        mode = value.removeprefix("surrealdb-")
        if data.get("surrealdb_mode") not in (None, "", mode):
            raise ValueError(f"backend {value} contradicts surrealdb_mode {data['surrealdb_mode']}")
        return {**data, "backend": StorageBackend.SURREALDB.value, "surrealdb_mode": mode}
    return data


def execution_no_tie(values: dict[str, Any]) -> dict[str, Any]:
    no_tie(values["force_orchestrated"], values["force_direct"])
    return values


# The checks of whole sections, by the name the JSON schema records them under: "x-before"
# (on the section as given, as the model's mode="before" validator), "x-after".
SECTION_RULES: dict[str, Callable[[Any], Any]] = {
    rule.__name__: rule for rule in (storage_seed_names, execution_no_tie)
}


class _Sections(Protocol):
    @property
    def storage(self) -> Any: ...
    @property
    def server(self) -> Any: ...
    @property
    def nushell(self) -> Any: ...
    @property
    def python(self) -> Any: ...


def _nushell_lib(settings: _Sections) -> Path:
    if settings.nushell.provisioning_lib:
        return Path(settings.nushell.provisioning_lib).expanduser()
    return PACKAGED_NULIB


class DerivedPaths:
    """What the settings imply, for the model and the quick view alike."""

    @property
    def data_dir(self: _Sections) -> Path:
        return Path(self.storage.data_dir).expanduser()

    @property
    def token_path(self: _Sections) -> Path:
        if self.server.token_file:
            return Path(self.server.token_file).expanduser()
        return Path(self.storage.data_dir).expanduser() / "api-token"

    @property
    def nushell_lib(self: _Sections) -> Path:
        return _nushell_lib(self)

    @property
    def nushell_libs(self: _Sections) -> list[Path]:
        """The user's library (when set) before the platform's: it adds, never replaces."""
        libs = [_nushell_lib(self)]
        if _real(libs[0]) != _real(PACKAGED_NULIB):
            libs.append(PACKAGED_NULIB)
        return libs

    @property
    def python_binary(self: _Sections) -> str:
        return str(self.python.binary) or sys.executable
