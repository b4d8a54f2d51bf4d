"""Item 6 of issue 13: the quick commands import only what they use.

The real console script runs under ``python -X importtime``; every module it imports
is named on stderr. No timing is asserted here (bench/bench_cli.py measures it)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.acceptance.cli_env import PROVISIONING, Cli

# The daemon's web stack, the clouds' SDKs, the stores' drivers, Nickel, and Rich
# (only the live monitor draws with it).
HEAVY = (
    "fastapi",
    "starlette",
    "uvicorn",
    "boto3",
    "botocore",
    "upcloud_api",
    "psycopg",
    "surrealdb",
    "nickel",
    "kcl_lib",
    "rich",
    "yaml",
    "provisioning.orchestrator",
)


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    machine = Cli(tmp_path_factory.mktemp("startup"))
    try:
        started = machine.run("orchestrator", "start", "--daemon")
        assert started.code == 0, started
        yield machine
    finally:
        machine.cleanup()


def imported(cli: Cli, *args: str) -> tuple[int, set[str]]:
    completed = subprocess.run(
        [sys.executable, "-X", "importtime", str(PROVISIONING), *args],
        env=cli.env,
        cwd=cli.root,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    modules = {
        line.rsplit("|", 1)[1].strip()
        for line in completed.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }
    assert "provisioning.cli.main" in modules, completed.stderr[-2000:]
    return completed.returncode, modules


def heavy_in(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY))


@pytest.mark.parametrize(
    "args",
    [("--help",), ("version",), ("env",), ("task", "list"), ("task", "--help")],
    ids=["help", "version", "env", "task-list", "task-help"],
)
def test_quick_commands_import_nothing_heavy(running: Cli, args: tuple[str, ...]) -> None:
    code, modules = imported(running, *args)
    assert code == 0
    assert heavy_in(modules) == []


def test_root_help_imports_no_command_group(tmp_path: Path) -> None:
    code, modules = imported(Cli(tmp_path), "--help")
    assert code == 0
    groups = sorted(
        m
        for m in modules
        if m.startswith("provisioning.cli.")
        and m
        not in {
            "provisioning.cli.main",
            "provisioning.cli.fastpath",
            "provisioning.cli.root",
            "provisioning.cli.lazy",
            "provisioning.cli.exits",
            "provisioning.cli.coercion",
        }
    )
    assert groups == []
    # Not even the HTTP client or the configuration models.
    assert not {"httpx", "pydantic", "provisioning.config"} & modules


def test_the_check_sees_a_heavy_import(running: Cli) -> None:
    """The detector works: a command that reads a YAML workflow pulls in YAML."""
    (running.root / "bad.yaml").write_text("name: [unclosed\n")
    code, modules = imported(running, "workflow", "submit", "--check", "bad.yaml")
    assert code == 2
    assert "yaml" in heavy_in(modules)


# What the commands a user waits on leave out (issue 14, point 3): Typer (the quick entry,
# cli/fastpath.py), pydantic (the configuration's quick path, config/quick.py, and the
# orchestrator validating the workflow), http.client with email and ssl (http11.py).
LEAN = ("typer", "click", "pydantic", "pydantic_core", "http.client", "email", "ssl")


@pytest.mark.parametrize(
    "args",
    [
        ("workflow", "submit", "one.json", "--wait", "--json"),
        ("batch", "submit", "one.json", "--wait", "-o", "json"),
        ("task", "submit", "--wait", "--json", "--", "true"),
    ],
    ids=" ".join,
)
def test_the_waited_commands_import_no_parser_no_models_no_http_client(
    running: Cli, args: tuple[str, ...]
) -> None:
    one = {"name": "one", "operations": [{"id": "a", "run": {"command": ["true"]}}]}
    (running.root / "one.json").write_text(json.dumps(one))
    code, modules = imported(running, *args)
    assert code == 0
    assert heavy_in(modules) == []
    assert sorted(m for m in modules if any(m == x or m.startswith(x + ".") for x in LEAN)) == []


@pytest.mark.parametrize(
    "args", [("--help",), ("version",), ("task", "list"), ("workflow", "list")], ids=" ".join
)
def test_quick_commands_load_no_models_and_no_http_client(
    running: Cli, args: tuple[str, ...]
) -> None:
    code, modules = imported(running, *args)
    assert code == 0
    lean = ("pydantic", "http.client", "email", "ssl")
    assert sorted(m for m in modules if any(m == x or m.startswith(x + ".") for x in lean)) == []
