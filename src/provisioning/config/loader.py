"""Layered configuration loading with the source of every value remembered.

Layers, lowest first: packaged defaults, system file, user file, workspace file,
the file named by ``PROVISIONING_CONFIG``, ``PROVISIONING_<SECTION>_<KEY>``
environment variables, then command-line flags.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from . import quick

if TYPE_CHECKING:
    from pydantic import ValidationError

    from .models import Settings

DEFAULTS_FILE = Path(__file__).with_name("config.defaults.toml")
SYSTEM_FILE = Path("/etc/provisioning/config.toml")
WORKSPACE_CONFIG = Path("config") / "provisioning.toml"
ENV_PREFIX = "PROVISIONING_"


class ConfigError(Exception):
    """A configuration value or file is wrong; the message says where and why."""


class Layer(NamedTuple):
    """One source of configuration values."""

    name: str
    values: dict[str, dict[str, Any]]
    path: Path | None = None


class LoadedConfig:
    """The validated settings and, for each ``section.key``, where its value came from."""

    def __init__(
        self,
        settings: Settings,
        sources: dict[str, str] | None = None,
        files: list[Path] | None = None,
        workspace_dir: Path | None = None,
    ) -> None:
        self.settings = settings
        self.sources: dict[str, str] = {} if sources is None else sources
        self.files: list[Path] = [] if files is None else files
        self.workspace_dir = workspace_dir


def _read_toml(path: Path, name: str) -> Layer:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read configuration file: {exc.strerror}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    for section, body in data.items():
        if not isinstance(body, dict):
            line = _line_of(path, section, None)
            raise ConfigError(
                f"{path}{line}: key {section!r}: expected a [section] table, got a value"
            )
    return Layer(name=name, values=data, path=path)


def _line_of(path: Path, section: str, key: str | None) -> str:
    """Best-effort ':LINE' of ``key`` inside ``[section]`` (tomllib keeps no positions)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return ""
    current = ""
    for number, raw in enumerate(lines, start=1):
        stripped = raw.strip()
        header = re.match(r"\[\s*([^\[\]]+?)\s*\]\s*(#.*)?$", stripped)
        if header:
            current = header.group(1)
            if current == section if key is None else current == f"{section}.{key}":
                return f":{number}"
            continue
        if key is None and not current and re.match(rf"{re.escape(section)}\s*=", stripped):
            return f":{number}"
        if key is not None and current == section and re.match(rf"{re.escape(key)}\s*=", stripped):
            return f":{number}"
        if key is not None and re.match(rf"{re.escape(section)}\.{re.escape(key)}\s*=", stripped):
            return f":{number}"
    return ""


def _env_layer(environ: Mapping[str, str]) -> Layer:
    values: dict[str, dict[str, Any]] = {}
    for section_name, keys in quick.sections().items():
        for key in keys:
            env_name = f"{ENV_PREFIX}{section_name.upper()}_{key.upper()}"
            if env_name in environ:
                values.setdefault(section_name, {})[key] = _parse_env_value(environ[env_name])
    return Layer(name="environment", values=values)


def _parse_env_value(raw: str) -> Any:
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def _find_workspace(cwd: Path, environ: Mapping[str, str]) -> Path | None:
    explicit = environ.get("PROVISIONING_WORKSPACE")
    if explicit:
        candidate = Path(explicit).expanduser() / WORKSPACE_CONFIG
        return candidate if candidate.is_file() else None
    for directory in (cwd, *cwd.parents):
        candidate = directory / WORKSPACE_CONFIG
        if candidate.is_file():
            return candidate
    return None


def file_layers(environ: Mapping[str, str], cwd: Path) -> list[Layer]:
    """Every configuration file that applies, lowest precedence first."""
    layers = [_read_toml(DEFAULTS_FILE, "default")]
    system = Path(environ.get("PROVISIONING_SYSTEM_CONFIG", str(SYSTEM_FILE)))
    if system.is_file():
        layers.append(_read_toml(system, "system"))
    config_home = environ.get("XDG_CONFIG_HOME") or str(Path(environ.get("HOME", "~")) / ".config")
    user = Path(config_home).expanduser() / "provisioning" / "config.toml"
    if user.is_file():
        layers.append(_read_toml(user, "user"))
    workspace = _find_workspace(cwd, environ)
    if workspace is not None:
        layers.append(_read_toml(workspace, "workspace"))
    named = environ.get("PROVISIONING_CONFIG")
    if named:
        path = Path(named).expanduser()
        if not path.is_file():
            raise ConfigError(f"PROVISIONING_CONFIG names {path}, which is not a file")
        layers.append(_read_toml(path, "PROVISIONING_CONFIG"))
    return layers


def _describe(layer: Layer, section: str, key: str) -> str:
    if layer.name == "default":
        return "default"
    if layer.path is not None:
        return f"{layer.path}{_line_of(layer.path, section, key)}"
    if layer.name == "environment":
        return f"environment variable {ENV_PREFIX}{section.upper()}_{key.upper()}"
    return layer.name


def load_config(
    *,
    flags: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    extra_file: Path | None = None,
    lazy_model: bool = False,
) -> LoadedConfig:
    """Merge every layer and validate the result.

    ``flags`` maps ``"section.key"`` to a value given on the command line;
    ``None`` values mean "flag not given". ``extra_file`` (``--config``) is
    applied just above ``PROVISIONING_CONFIG``. With ``lazy_model`` (the CLI), values
    the quick check is sure of (``quick.py``) are not given to pydantic until something
    asks for more than their values.
    """
    env = os.environ if environ is None else environ
    layers = file_layers(env, cwd or Path.cwd())
    if extra_file is not None:
        if not extra_file.is_file():
            raise ConfigError(f"--config names {extra_file}, which is not a file")
        layers.append(_read_toml(extra_file, "--config"))
    layers.append(_env_layer(env))
    flag_values: dict[str, dict[str, Any]] = {}
    for dotted, value in (flags or {}).items():
        if value is not None:
            section, key = dotted.split(".", 1)
            flag_values.setdefault(section, {})[key] = value
    layers.append(Layer(name="flag", values=flag_values))

    merged: dict[str, dict[str, Any]] = {}
    origin: dict[str, Layer] = {}
    known_sections = quick.sections()
    for layer in layers:
        for section, body in layer.values.items():
            if section not in known_sections:
                where = layer.path or layer.name
                line = _line_of(layer.path, section, None) if layer.path else ""
                known = ", ".join(known_sections)
                raise ConfigError(f"{where}{line}: unknown section [{section}] (known: {known})")
            for key, value in body.items():
                merged.setdefault(section, {})[key] = value
                origin[f"{section}.{key}"] = layer
    _derive_endpoint(merged, origin)

    def validate() -> Settings:
        from pydantic import ValidationError

        from .models import Settings

        try:
            return Settings.model_validate(merged)
        except ValidationError as exc:
            raise ConfigError(_explain(exc, origin)) from None

    settings = (quick.validated(merged, validate) if lazy_model else None) or validate()
    sources = {dotted: _describe(layer, *dotted.split(".", 1)) for dotted, layer in origin.items()}
    workspace = next((layer.path for layer in layers if layer.name == "workspace"), None)
    return LoadedConfig(
        settings=settings,
        sources=sources,
        files=[layer.path for layer in layers if layer.path is not None],
        workspace_dir=None if workspace is None else workspace.parent.parent,
    )


def _derive_endpoint(merged: dict[str, dict[str, Any]], origin: dict[str, Layer]) -> None:
    """Where only ``[server]`` was configured, the CLI should still find the daemon."""
    if origin["orchestrator.endpoint"].name != "default":
        return
    moved = [k for k in ("server.host", "server.port") if origin[k].name != "default"]
    if not moved:
        return
    host = str(merged["server"]["host"])
    if host in ("0.0.0.0", "::"):
        host = "127.0.0.1"
    elif ":" in host:
        host = f"[{host}]"
    merged["orchestrator"]["endpoint"] = f"http://{host}:{merged['server']['port']}"
    source = moved[-1]
    described = _describe(origin[source], *source.split("."))
    origin["orchestrator.endpoint"] = Layer(name=f"derived from {source} ({described})", values={})


def _explain(exc: ValidationError, origin: Mapping[str, Layer]) -> str:
    messages = []
    for error in exc.errors():
        loc = [str(part) for part in error["loc"]]
        dotted = ".".join(loc[:2])
        layer = origin.get(dotted)
        where = _describe(layer, loc[0], loc[1]) if layer and len(loc) >= 2 else "configuration"
        if error["type"] == "extra_forbidden":
            messages.append(f"{where}: unknown key {'.'.join(loc)}")
            continue
        got = error.get("input")
        messages.append(f"{where}: key {'.'.join(loc)}: {error['msg']} (got {got!r})")
    return "invalid configuration:\n  " + "\n  ".join(messages)
