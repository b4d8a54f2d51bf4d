"""The KCL bridge: ``.k`` files of the original platform evaluated by the official
engine (``kcl-lib``) in a bounded worker process, then validated like Nickel.

KCL is deprecated here (the original platform replaced it with Nickel in v5.0.0):
reading a ``.k`` file prints a one-line notice saying how to migrate.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

from .errors import EVAL_TIMEOUT_SECONDS, LoadError
from .worker import run_worker, worker_failed

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_LOCATION = re.compile(r"^\s*-->\s*(?P<file>.+?):(?P<line>\d+)(?::(?P<col>\d+))?\s*$")
_CARET = re.compile(r"^\s*\|\s*\^*\s*(?P<msg>\S.*?)\s*$")
# KCL's first line names the kind of error: "error[E1001]: InvalidSyntax", "EvaluationError".
_HEAD = re.compile(r"^(?:error\[(?P<code>[A-Z0-9]+)\]:\s*)?(?P<kind>[A-Z][A-Za-z]+)\s*$")
_noticed: set[Path] = set()


def kcl_notice(path: Path) -> str:
    return (
        f"notice: {path.name} is KCL, which is deprecated (the platform moved to Nickel); "
        f"convert it with: provisioning migrate kcl {path} --write"
    )


def notify_once(path: Path) -> None:
    """The deprecation notice, once per file and process, on stderr."""
    resolved = path.resolve()
    if resolved not in _noticed:
        _noticed.add(resolved)
        print(kcl_notice(path), file=sys.stderr, flush=True)


def kcl_error_line(report: str, path: Path) -> str:
    """KCL's multi-line report as one line: ``file:line:col: Kind: message``, with the
    further places it names (e.g. the failed ``check``) in parentheses."""
    lines = [_ANSI.sub("", line).rstrip() for line in report.splitlines()]
    kind = ""
    places: list[tuple[str, str]] = []
    where: str | None = None
    for line in lines:
        head = _HEAD.match(line.strip())
        if head and not kind:
            kind = head["kind"]
            continue
        located = _LOCATION.match(line)
        if located:
            col = f":{located['col']}" if located["col"] else ""
            where = f"{located['file']}:{located['line']}{col}"
            continue
        caret = _CARET.match(line)
        if caret and where is not None:
            places.append((where, caret["msg"]))
            where = None
    if not places:
        text = " ".join(line.strip() for line in lines if line.strip()) or "KCL failed"
        return f"{path}: KCL: {text}"
    (first, message), rest = places[0], places[1:]
    # The first further place KCL names (e.g. the check that failed); more would be noise.
    further = [f"{w}: {m}" for w, m in rest if (w, m) != places[0]][:1]
    extra = f" ({further[0]})" if further else ""
    return f"{first}: {kind or 'KCL error'}: {message}{extra}"


def run_kcl(
    path: Path, *, parse: bool = False, timeout: float = EVAL_TIMEOUT_SECONDS
) -> dict[str, Any]:
    """The worker's answer for ``path``: ``json`` (the data, as text) and, with
    ``parse``, ``ast`` (the file's syntax tree, as text). Raises :class:`LoadError`."""
    done = run_worker(
        "provisioning.schemas.kcl_worker",
        {"path": str(path.resolve()), "parse": parse},
        path=path,
        engine="KCL",
        timeout=timeout,
        cwd=path.resolve().parent,
    )
    if done.returncode != 0 or not done.stdout.strip():
        raise worker_failed(path, "KCL engine", done)
    answer: dict[str, Any] = json.loads(done.stdout)
    if not answer["ok"]:
        raise LoadError(kcl_error_line(str(answer["error"]), path))
    return answer


def evaluate_kcl(path: Path, *, notice: bool = True) -> Any:
    """The data of a ``.k`` file, as the KCL engine evaluates it."""
    if not path.is_file():
        raise LoadError(f"{path}: no such file")
    if notice:
        notify_once(path)
    text = run_kcl(path)["json"]
    return json.loads(text) if text.strip() else {}
