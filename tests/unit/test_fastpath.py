"""The CLI's quick entry (``cli/fastpath.py``) knows only names Typer declares, each for
the same parameter, and leaves every other command line to Typer."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer.main

from provisioning.cli import fastpath
from provisioning.cli.root import app


def typer_options(command: str) -> dict[str, str]:
    """Every option name of ``command`` (``"workflow submit"``), with its parameter."""
    root = typer.main.get_command(app)
    group, name = command.split()
    ctx = typer.Context(root)
    sub = root.get_command(ctx, group)  # type: ignore[attr-defined]
    found = sub.get_command(ctx, name)
    return {opt: p.name for p in found.params for opt in p.opts if opt.startswith("-")}


@pytest.mark.parametrize("command", sorted(fastpath.FORMS))
def test_every_name_is_typers_for_the_same_parameter(command: str) -> None:
    declared = typer_options(command)
    for option, (parameter, _) in fastpath.FORMS[command].options.items():
        assert declared.get(option) == parameter, option


def test_the_root_option_is_typers() -> None:
    root = typer.main.get_command(app)
    declared = {opt: p.name for p in root.params for opt in p.opts}
    for option, parameter in fastpath._ROOT.items():
        assert declared[option] == parameter


@pytest.mark.parametrize(
    "argv",
    [
        ["workflow", "submit", "--help"],
        ["workflow", "submit"],
        ["workflow", "submit", "a.json", "b.json"],
        ["workflow", "submit", "a.json", "--output=json"],
        ["workflow", "submit", "a.json", "--priority", "urgent"],
        ["workflow", "submit", "a.json", "-o"],
        ["workflow", "status", "abcd"],
        ["task", "submit", "--nu", "m", "f"],
        ["task", "submit", "--timeout", "soon", "--", "true"],
        ["task", "submit", "--max-attempts", "2.5", "--", "true"],
        ["--config"],
        ["version"],
        [],
    ],
    ids=" ".join,
)
def test_anything_else_goes_to_typer(argv: list[str]) -> None:
    assert fastpath.parse(argv) is None


def test_the_plain_forms() -> None:
    parsed = fastpath.parse(
        [
            "--config",
            "x.toml",
            "batch",
            "submit",
            "w.yaml",
            "--wait",
            "-o",
            "yaml",
            "--priority",
            "high",
        ]
    )
    assert parsed is not None
    assert (parsed.command, parsed.config, parsed.positional) == (
        "batch submit",
        Path("x.toml"),
        ["w.yaml"],
    )
    assert parsed.values == {"wait": True, "output": "yaml", "priority": "high"}
    task = fastpath.parse(
        ["task", "submit", "--wait", "--json", "--timeout", "5", "--", "sh", "-c", "--wait"]
    )
    assert task is not None
    assert task.positional == ["sh", "-c", "--wait"]
    assert task.values == {"wait": True, "json_out": True, "timeout": 5.0}


@pytest.mark.parametrize(
    ("kind", "given", "plain"),
    [
        (int, "50", 50),
        (int, "-3", -3),
        (int, 7, 7),
        (int, "007", None),  # Typer's (pydantic's) to read, and to refuse or not
        (int, "5_0", None),
        (int, " 5", None),
        (int, True, None),
        (float, "2.5", 2.5),
        (float, 3, 3.0),
        (float, "1e3", None),
        (float, "nan", None),
    ],
)
def test_numbers_typer_need_not_read(kind: type, given: object, plain: object) -> None:
    from provisioning.cli.coercion import _plain_number

    assert _plain_number(kind, given) == plain
