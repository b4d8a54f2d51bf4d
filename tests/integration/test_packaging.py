"""The data files the code loads at run time are declared as package data.

An editable install reads them from the source tree, so a missing
``package-data`` pattern only shows up in a real (wheel) install: the store
would then find no migrations. setuptools matches these patterns like
``pathlib`` globs relative to the package folder (``*`` never crosses a ``/``).
"""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "provisioning"


def _shipped() -> set[Path]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = config["tool"]["setuptools"]["package-data"]["provisioning"]
    return {path for pattern in patterns for path in PACKAGE.glob(pattern) if path.is_file()}


def test_every_sql_migration_is_package_data() -> None:
    migrations = set((PACKAGE / "orchestrator" / "store" / "sql").rglob("*.sql"))
    assert migrations, "no migrations found in the source tree"
    assert migrations - _shipped() == set()


def test_default_configuration_and_nushell_library_are_package_data() -> None:
    needed = {PACKAGE / "config" / "config.defaults.toml", *(PACKAGE / "nulib").rglob("*.nu")}
    assert needed - _shipped() == set()
