"""The quick entry for the commands a user waits on: ``workflow submit`` (``batch
submit``) and ``task submit`` in their plain forms, run without importing Typer
(~50 ms of every start, more than these commands' own work).

The options stay Typer's (``options.py``, ``workflow.py``, ``task.py`` declare them,
with their help); :data:`FORMS` only maps the names of those a plain command line
uses to the parameter of ``submitting.py`` each sets (a unit test keeps the names and
parameters equal to Typer's). Anything else -- ``--help``, ``--opt=value``, a value
that does not convert plainly, an option not listed, a mistake -- makes
:func:`parse` answer ``None``, and Typer parses the command line: help, errors and
exit codes are Typer's own."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

# The root's own option (main.py), then each command: option -> (parameter, conversion);
# a conversion of None marks a flag. What is not here goes to Typer.
_ROOT = {"--config": "config"}
_OUTPUT = {"--json": ("json_out", None), "-o": ("output", str), "--output": ("output", str)}
_PRIORITIES = ("low", "normal", "high", "critical")


def _priority(value: str) -> str:
    if value not in _PRIORITIES:
        raise ValueError(value)
    return value


def _number(value: str) -> float:
    return float(value)


def _count(value: str) -> int:
    return int(value)


class Form(NamedTuple):
    """A command's options this entry knows, and whether it takes one FILE or ARGV."""

    options: dict[str, tuple[str, Callable[[str], Any] | None]]
    file: bool


FORMS = {
    "workflow submit": Form(
        {
            "--wait": ("wait", None),
            "--check": ("check", None),
            "--priority": ("priority", _priority),
            **_OUTPUT,
        },
        file=True,
    ),
    "task submit": Form(
        {
            "--wait": ("wait", None),
            "--orchestrated": ("orchestrated", None),
            "--direct": ("direct", None),
            "--name": ("name", str),
            "--params": ("params", str),
            "--priority": ("priority", str),
            "--timeout": ("timeout", _number),
            "--max-attempts": ("max_attempts", _count),
            **_OUTPUT,
        },
        file=False,
    ),
}
FORMS["batch submit"] = FORMS["workflow submit"]


class Parsed(NamedTuple):
    command: str
    config: Path | None
    values: dict[str, Any]
    positional: list[str]


def parse(argv: list[str]) -> Parsed | None:
    """The command line, when it is one of :data:`FORMS` in a form known for certain."""
    config: Path | None = None
    rest = list(argv)
    while rest and rest[0] in _ROOT:
        if len(rest) < 2:
            return None
        config, rest = Path(rest[1]), rest[2:]
    if len(rest) < 2 or f"{rest[0]} {rest[1]}" not in FORMS:
        return None
    command = f"{rest[0]} {rest[1]}"
    form = FORMS[command]
    values: dict[str, Any] = {}
    positional: list[str] = []
    tokens = iter(rest[2:])
    for token in tokens:
        if token == "--" and not form.file:
            positional += list(tokens)
            break
        if not token.startswith("-") and token:
            positional.append(token)
            continue
        known = form.options.get(token)
        if known is None:
            return None
        name, convert = known
        if convert is None:
            values[name] = True
            continue
        raw = next(tokens, None)
        if raw is None:
            return None
        try:
            values[name] = convert(raw)
        except ValueError:
            return None
    if form.file and len(positional) != 1:
        return None
    return Parsed(command, config, values, positional)


def run(parsed: Parsed) -> None:
    from .common import State, output_format
    from .submitting import submit_task, submit_workflow

    st = State(config_file=parsed.config)
    values = parsed.values
    fmt = output_format(values.get("output"), values.get("json_out", False))
    group, _ = parsed.command.split()
    if parsed.command != "task submit":
        submit_workflow(
            st,
            group,
            Path(parsed.positional[0]),
            wait=values.get("wait", False),
            priority=values.get("priority"),
            check=values.get("check", False),
            fmt=fmt,
        )
        return
    submit_task(
        st,
        argv=parsed.positional or None,
        nu=None,
        python=None,
        name=values.get("name"),
        params=values.get("params"),
        priority=values.get("priority", "normal"),
        timeout=values.get("timeout"),
        max_attempts=values.get("max_attempts"),
        wait=values.get("wait", False),
        orchestrated=values.get("orchestrated", False),
        direct=values.get("direct", False),
        fmt=fmt,
    )


def main(argv: list[str]) -> bool:
    """Run ``argv`` here if it is a known form (then exits); ``False`` otherwise."""
    parsed = parse(argv)
    if parsed is None:
        return False
    try:
        run(parsed)
    except KeyboardInterrupt:
        # As Click says it.
        sys.stderr.write("\nAborted!\n")
        raise SystemExit(1) from None
    raise SystemExit(0)
