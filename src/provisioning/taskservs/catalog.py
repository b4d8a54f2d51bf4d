"""Resolving taskserv definitions and their install order."""

from __future__ import annotations

import graphlib
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..infra.models import Infra
from ..providers.base import HOSTNAME_RE

PLATFORM_CATALOG = Path(__file__).resolve().parent


class CatalogError(Exception):
    """A taskserv is unknown, badly defined, or its dependencies loop."""


@dataclass(frozen=True)
class TaskservDef:
    name: str
    version: str
    depends_on: tuple[str, ...]
    settings: dict[str, Any]
    folder: Path
    source: str  # "platform" | "workspace"
    description: str = ""
    service_argv: tuple[str, ...] = ()
    override: dict[str, Any] = field(default_factory=dict)
    # Debian packages fetched on this machine (``apt-get download``) and unpacked on
    # the server; the health check run after install and by ``taskserv status``.
    packages: tuple[str, ...] = ()
    check: dict[str, Any] = field(default_factory=dict)

    @property
    def library(self) -> Path:
        """The Nushell library folder holding ``<name>/taskserv.nu``."""
        return self.folder.parent

    @property
    def module(self) -> str:
        return f"{self.name}/taskserv.nu"

    @property
    def service(self) -> bool:
        return bool(self.service_argv)


def _folders(workspace_dir: Path | None) -> list[tuple[str, Path]]:
    folders = []
    if workspace_dir is not None:
        folders.append(("workspace", workspace_dir / "extensions" / "taskservs"))
    folders.append(("platform", PLATFORM_CATALOG))
    return folders


def _read(name: str, folder: Path, source: str) -> TaskservDef:
    path = folder / "taskserv.toml"
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise CatalogError(f"{path}: {exc}") from None
    if data.get("name", name) != name:
        raise CatalogError(f"{path}: name {data.get('name')!r} does not match its folder {name!r}")
    if not (folder / "taskserv.nu").is_file():
        raise CatalogError(f"{folder}: no taskserv.nu (a Nushell module exporting install)")
    return TaskservDef(
        name=name,
        version=str(data.get("version", "0")),
        depends_on=tuple(data.get("depends_on", [])),
        settings=dict(data.get("settings", {})),
        folder=folder,
        source=source,
        description=str(data.get("description", "")),
        service_argv=tuple(data.get("service", {}).get("argv", [])),
        packages=tuple(data.get("packages", {}).get("debian", [])),
        check=dict(data.get("check", {})),
    )


def resolve(name: str, workspace_dir: Path | None, infra: Infra | None = None) -> TaskservDef:
    """The definition of ``name``: infra override over workspace over platform."""
    if not HOSTNAME_RE.fullmatch(name):
        raise CatalogError(f"taskserv name {name!r} is not an RFC 1123 label")
    for source, base in _folders(workspace_dir):
        if (base / name / "taskserv.toml").is_file():
            found = _read(name, base / name, source)
            break
    else:
        known = ", ".join(t.name for t in available(workspace_dir))
        raise CatalogError(f"unknown taskserv {name!r} (known: {known})")
    override = infra.taskservs.get(name) if infra is not None else None
    if override is None:
        return found
    return TaskservDef(
        name=found.name,
        version=override.version or found.version,
        depends_on=tuple(override.depends_on)
        if override.depends_on is not None
        else found.depends_on,
        settings={**found.settings, **override.settings},
        folder=found.folder,
        source=found.source,
        description=found.description,
        service_argv=found.service_argv,
        override=override.model_dump(exclude_none=True),
        packages=found.packages,
        check=found.check,
    )


def available(workspace_dir: Path | None) -> list[TaskservDef]:
    seen: dict[str, TaskservDef] = {}
    for source, base in _folders(workspace_dir):
        if not base.is_dir():
            continue
        for folder in sorted(base.iterdir()):
            if (folder / "taskserv.toml").is_file() and folder.name not in seen:
                seen[folder.name] = _read(folder.name, folder, source)
    return sorted(seen.values(), key=lambda t: t.name)


def install_order(
    names: list[str], workspace_dir: Path | None, infra: Infra | None = None
) -> list[TaskservDef]:
    """``names`` and everything they depend on, dependencies first, each once."""
    defs: dict[str, TaskservDef] = {}
    pending = list(names)
    while pending:
        name = pending.pop()
        if name in defs:
            continue
        defs[name] = resolve(name, workspace_dir, infra)
        pending.extend(defs[name].depends_on)
    sorter = graphlib.TopologicalSorter({n: set(d.depends_on) for n, d in defs.items()})
    try:
        order = list(sorter.static_order())
    except graphlib.CycleError as exc:
        raise CatalogError(f"taskserv dependency cycle: {' -> '.join(exc.args[1])}") from None
    return [defs[name] for name in order]
