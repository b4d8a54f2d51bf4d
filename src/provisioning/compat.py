"""Version compatibility between the CLI and an orchestrator (packaged ``versions.toml``)."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from . import API_VERSION, __version__

VERSIONS_FILE = Path(__file__).with_name("versions.toml")


class Incompatible(Exception):
    """The orchestrator's version is outside what this CLI supports."""


def _parse(version: str) -> tuple[int, ...]:
    parts = []
    for piece in version.split("-")[0].split("."):
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits or 0))
    return tuple([*parts, 0, 0, 0][:3])


def satisfies(version: str, spec: str) -> bool:
    """Cargo-style ``^X.Y`` (same left-most non-zero part, at least X.Y), ``>=X``, or exact."""
    have = _parse(version)
    spec = spec.strip()
    if spec.startswith("^"):
        given = len(spec[1:].split("."))
        want = _parse(spec[1:])
        # The left-most non-zero part given must match; ^0 and ^0.0 fix only what they name.
        significant = next((i for i, part in enumerate(want[:given]) if part != 0), given - 1)
        return have[: significant + 1] == want[: significant + 1] and have >= want
    if spec.startswith(">="):
        return have >= _parse(spec[2:])
    return have == _parse(spec)


def matrix(path: Path | None = None) -> dict[str, Any]:
    source = path or Path(os.environ.get("PROVISIONING_VERSIONS_FILE", VERSIONS_FILE))
    with open(source, "rb") as handle:
        data: dict[str, Any] = tomllib.load(handle)
    return data


def check(health: dict[str, Any], *, core: str = __version__) -> None:
    """Raise :class:`Incompatible` unless the orchestrator that sent ``health`` fits."""
    platform = str(health.get("version", "?"))
    api = str(health.get("api_version", "?"))
    rules = matrix().get("compatibility", {}).get("core", {}).get(core, {})
    wanted_api = rules.get("orchestrator-api", API_VERSION)
    if api != wanted_api:
        older = _parse(api.lstrip("v")) < _parse(wanted_api.lstrip("v"))
        raise Incompatible(
            f"orchestrator API {api} (platform {platform}) is incompatible with provisioning "
            f"{core}, which speaks API {wanted_api}; "
            + (
                _UPGRADE_ORCHESTRATOR.format(f"API {wanted_api}")
                if older
                else _UPGRADE_CLI.format(platform)
            )
        )
    spec = rules.get("platform")
    minimum = rules.get("min-platform")
    if spec and not satisfies(platform, spec):
        too_old = _parse(platform) < _parse(spec.lstrip("^>="))
        raise Incompatible(
            f"orchestrator platform {platform} is incompatible with provisioning {core} "
            f"(needs platform {spec}); "
            + (
                _UPGRADE_ORCHESTRATOR.format(f"platform {spec}")
                if too_old
                else _UPGRADE_CLI.format(platform)
            )
        )
    if minimum and _parse(platform) < _parse(minimum):
        raise Incompatible(
            f"orchestrator platform {platform} is incompatible with provisioning {core} "
            f"(needs platform >= {minimum}); "
            + _UPGRADE_ORCHESTRATOR.format(f"platform >= {minimum}")
        )


_UPGRADE_ORCHESTRATOR = "upgrade the orchestrator (provisioning-orchestrator) to {}"
_UPGRADE_CLI = "upgrade provisioning (this CLI) to a release that supports platform {}"
