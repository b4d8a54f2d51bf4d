"""Workflow files in Nickel, JSON, YAML, TOML or (deprecated) KCL -> the workflow as
JSON data.

Nickel files are evaluated with the platform's contracts applied (the user's
file does not import them), in a bounded worker process. Errors name the file,
the line where one is known, and the field.
"""

from __future__ import annotations

import json
import re
import sys
import tomllib
from pathlib import Path
from typing import Any

from .errors import EVAL_TIMEOUT_SECONDS, LoadError

__all__ = ["EVAL_TIMEOUT_SECONDS", "LoadError", "evaluate_nickel", "load_workflow_file", "unwrap"]

SCHEMAS = Path(__file__).resolve().parent
WRAPPERS = ("batch_workflow", "workflow")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _nickel_string(text: str) -> str:
    """A Nickel string literal holding ``text`` (no interpolation)."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("%", "\\%")
    return f'"{escaped}"'


def evaluate_nickel(
    path: Path,
    contract: str = "Workflow",
    *,
    schema: str = "workflow.ncl",
    wrappers: tuple[str, ...] = WRAPPERS,
    timeout: float = EVAL_TIMEOUT_SECONDS,
) -> Any:
    """Evaluate ``path`` under the shipped ``schemas/<schema>``'s ``contract``; a top-level
    record holding only one of ``wrappers`` is unwrapped first."""
    schema_path = _nickel_string(str(SCHEMAS / schema))
    target = _nickel_string(str(path.resolve()))
    unwrap = " ".join(
        f'if std.record.has_field "{key}" raw then raw.{key} else' for key in wrappers
    )
    expr = (
        f"let schema = import {schema_path} in let raw = import {target} in "
        f"({unwrap} raw) | schema.{contract}"
    )
    return _run_nickel(expr, path, timeout)


def evaluate_nickel_plain(path: Path, *, timeout: float = EVAL_TIMEOUT_SECONDS) -> Any:
    """Evaluate ``path`` with its own contracts only."""
    return _run_nickel(f"import {_nickel_string(str(path.resolve()))}", path, timeout)


def _run_nickel(expr: str, path: Path, timeout: float) -> Any:
    # The worker (subprocess), KCL and YAML are imported by what reads those files only.
    from .worker import run_worker, worker_failed

    done = run_worker(
        "provisioning.schemas.evaluate",
        {"expr": expr, "import_paths": [str(path.resolve().parent)]},
        path=path,
        engine="Nickel",
        timeout=timeout,
    )
    if done.returncode != 0:
        raise worker_failed(path, "Nickel evaluator", done)
    answer = json.loads(done.stdout)
    if not answer["ok"]:
        raise LoadError(tidy_nickel_error(_ANSI.sub("", answer["error"])))
    return json.loads(answer["json"])


_SNIPPET = re.compile(r"^\s*┌─ (\S+?):\d+:\d+\s*$")


def tidy_nickel_error(text: str) -> str:
    """Nickel's report for a user: without its leading ``error:`` (the CLI says it once)
    and without the snippets of the loader's own wrapper expression (``python:1:...``),
    keeping each ``file:line:col`` of the user's file with its caret."""
    blocks: list[list[str]] = [[]]
    for line in text.strip().splitlines():
        if _SNIPPET.match(line):
            blocks.append([])
        blocks[-1].append(line)
    kept = [
        block
        for block in blocks
        if not (match := _SNIPPET.match(block[0])) or not match.group(1).startswith(("python", "<"))
    ]
    lines = [line for block in kept for line in block]
    while lines and lines[-1].strip() in ("", "│"):
        lines.pop()
    if lines and lines[0].startswith("error: "):
        lines[0] = lines[0][len("error: ") :]
    return "\n".join(lines)


def _shared_strings(obj: dict[str, Any]) -> dict[str, Any]:
    for key, value in obj.items():
        if type(value) is list and value and type(value[0]) is str:
            obj[key] = [sys.intern(v) if type(v) is str else v for v in value]
    return obj


def loads_shared(raw: bytes | str) -> Any:
    """``json.loads``, with one string object per distinct name in lists of strings:
    a workflow of 10,000 operations each depending on the 100 before names each one
    100 times, and a million separate copies of those names cost ~80 MB more at peak
    (each list is shared as soon as its object is read, not after)."""
    return json.loads(raw, object_hook=_shared_strings)


def unwrap(data: Any, wrappers: tuple[str, ...] = WRAPPERS) -> Any:
    """``{batch_workflow = {...}}`` (or another of ``wrappers``, alone) -> ``{...}``."""
    return _unwrap(data, wrappers)


def _unwrap(data: Any, wrappers: tuple[str, ...] = WRAPPERS) -> Any:
    if isinstance(data, dict):
        for key in wrappers:
            if key in data and isinstance(data[key], dict) and len(data) == 1:
                return data[key]
    return data


def load_workflow_file(path: Path) -> Any:
    """The workflow in ``path`` as JSON data (not yet validated against the spec,
    except for Nickel files, whose contracts already ran)."""
    if not path.is_file():
        raise LoadError(f"{path}: no such file")
    if path.suffix.lower() == ".ncl":
        return evaluate_nickel(path)
    return load_data_file(path)


def load_kcl_file(path: Path, wrappers: tuple[str, ...] = WRAPPERS) -> Any:
    """A ``.k`` file of the original platform, evaluated by the KCL engine."""
    from .kcl import evaluate_kcl

    return _unwrap(evaluate_kcl(path), wrappers)


def load_data_file(path: Path, wrappers: tuple[str, ...] = WRAPPERS) -> Any:
    """A JSON, YAML or TOML file as data, errors with file and line."""
    suffix = path.suffix.lower()
    if suffix == ".k":
        return load_kcl_file(path, wrappers)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise LoadError(f"{path}: cannot read: {exc}") from None
    if suffix == ".json":
        try:
            return _unwrap(json.loads(text), wrappers)
        except json.JSONDecodeError as exc:
            raise LoadError(f"{path}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}") from None
    if suffix in (".yaml", ".yml"):
        import yaml

        try:
            return _unwrap(yaml.safe_load(text), wrappers)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
            problem = getattr(exc, "problem", None) or str(exc)
            raise LoadError(f"{path}{where}: invalid YAML: {problem}") from None
    if suffix == ".toml":
        try:
            return _unwrap(tomllib.loads(text), wrappers)
        except tomllib.TOMLDecodeError as exc:
            raise LoadError(f"{path}: invalid TOML: {exc}") from None
    raise LoadError(
        f"{path}: unknown workflow format {suffix!r} (use .ncl, .json, .yaml, .toml, or .k for KCL)"
    )


def line_of_operation(path: Path, op_id: str) -> int | None:
    """Best-effort line where operation ``op_id`` is declared (for semantic errors,
    which no parser reports a position for)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return None
    quoted = re.escape(op_id)
    # id = "a" (Nickel, TOML), "id": "a" (JSON), id: a / id: "a" (YAML)
    pattern = re.compile(rf"""\bid\b["']?\s*[:=]\s*(["']{quoted}["']|{quoted}\s*(#.*)?$)""")
    for number, line in enumerate(lines, start=1):
        if pattern.search(line):
            return number
    return None
