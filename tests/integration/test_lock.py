"""The install is locked (issue 13, item 7): requirements.lock pins every dependency
with hashes, covers everything pyproject.toml asks for, and the environment the tests
run in (made by scripts/setup.sh) holds exactly the locked versions."""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "requirements.lock"
PIN = re.compile(r"^([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?==([^\s;\\]+)\s*(?:;\s*([^\\]+?))?\s*\\?$")


def locked() -> dict[str, list[tuple[str, str | None]]]:
    """Each locked name: its (version, marker) pins (one per Python range, if split)."""
    pins: dict[str, list[tuple[str, str | None]]] = {}
    for line in LOCK.read_text(encoding="utf-8").splitlines():
        match = PIN.match(line)
        if match:
            name, version, marker = match.groups()
            pins.setdefault(canonicalize_name(name), []).append((version, marker))
    return pins


def wanted_here(marker: str | None) -> bool:
    return marker is None or Marker(marker).evaluate()


def test_every_pin_has_a_hash() -> None:
    text = LOCK.read_text(encoding="utf-8")
    blocks = re.split(r"\n(?=[A-Za-z0-9])", text.split("\n", 1)[1])
    pinned = [block for block in blocks if "==" in block.split("\n", 1)[0]]
    assert len(pinned) == sum(len(v) for v in locked().values()) > 20
    assert [b.split()[0] for b in pinned if "--hash=sha256:" not in b] == []


def test_the_lock_covers_every_dependency_of_pyproject() -> None:
    """A dependency added to pyproject.toml without re-running scripts/lock.sh fails here."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    declared = [
        *project["project"]["dependencies"],
        *(
            r
            for extra in project["project"].get("optional-dependencies", {}).values()
            for r in extra
        ),
        *project["build-system"]["requires"],
    ]
    pins = locked()
    missing = []
    for raw in declared:
        requirement = Requirement(raw)
        if canonicalize_name(requirement.name) == canonicalize_name(project["project"]["name"]):
            continue  # an extra naming another extra of this package
        versions = [
            v
            for v, marker in pins.get(canonicalize_name(requirement.name), [])
            if wanted_here(marker)
        ]
        if not any(requirement.specifier.contains(v, prereleases=True) for v in versions):
            missing.append(raw)
    assert missing == [], "run scripts/lock.sh"


def test_the_environment_holds_exactly_the_locked_versions() -> None:
    wrong = {}
    for name, pins in locked().items():
        for version, marker in pins:
            if not wanted_here(marker):
                continue
            try:
                installed = metadata.version(name)
            except metadata.PackageNotFoundError:
                installed = None
            if installed != version:
                wrong[name] = (version, installed)
    assert wrong == {}, "locked vs installed; run scripts/setup.sh"
