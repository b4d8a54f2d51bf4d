"""``provisioning migrate kcl PATH``: a plan (dry run) or the writes, file by file.

Each ``.k`` file is evaluated by the KCL engine, converted, and the Nickel proven: it
must evaluate to the same data as the KCL, and -- for a workflow or an infra -- to
the same data again under the platform's own contracts. A file that fails is
reported and never written. A ``.ncl`` is written only where none exists or where the
one there is this tool's own, unedited output (its first line says so and carries the
hash of the rest): a hand-written or edited ``.ncl`` is never overwritten.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from ..schemas.kcl import run_kcl
from ..schemas.loader import LoadError, evaluate_nickel, evaluate_nickel_plain
from .convert import convert
from .values import Unmapped

MARKER = "# provisioning migrate kcl: from "
SKIP_DIRS = {".git", ".venv", "node_modules", "__pycache__", "runtime", ".tools"}


class Action(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    UNCHANGED = "unchanged"
    KEEP = "keep"  # a hand-written or edited .ncl is there
    FAILED = "failed"


@dataclass
class FilePlan:
    source: Path
    target: Path
    action: Action
    kind: str = "data"
    reason: str = ""
    text: str = ""
    diff: str = ""
    unmapped: list[Unmapped] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": str(self.source),
            "target": str(self.target),
            "action": self.action.value,
            "kind": self.kind,
            "reason": self.reason,
            "not_mapped": [str(u) for u in self.unmapped],
        }


def kcl_files(path: Path) -> Iterator[Path]:
    if path.is_file():
        yield path
        return
    for candidate in sorted(path.rglob("*.k")):
        if candidate.is_file() and not SKIP_DIRS.intersection(candidate.relative_to(path).parts):
            yield candidate


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def with_marker(source: Path, body: str) -> str:
    return (
        f"{MARKER}{source.name}, content sha256 {_digest(body)} (edit it and it is yours)\n{body}"
    )


def ours_unedited(text: str) -> bool:
    """Whether ``text`` is this tool's output, unchanged since it was written."""
    first, _, body = text.partition("\n")
    if not first.startswith(MARKER) or "content sha256 " not in first:
        return False
    recorded = first.split("content sha256 ", 1)[1].split()[0]
    return recorded == _digest(body)


def kind_of(source: Path, data: Any) -> tuple[str, str | None, str, tuple[str, ...]]:
    """(kind, contract, schema file, wrappers) of a file's data."""
    unwrapped = data
    if isinstance(data, dict):
        for key in ("batch_workflow", "workflow"):
            if isinstance(data.get(key), dict) and len(data) == 1:
                unwrapped = data[key]
    if isinstance(unwrapped, dict) and "operations" in unwrapped:
        return "workflow", "Workflow", "workflow.ncl", ("batch_workflow", "workflow")
    if source.name == "infra.k":
        return "infra", "Infra", "infra.ncl", ("infra",)
    return "data", None, "", ()


def prove(source: Path, data: Any, text: str) -> tuple[str, str | None]:
    """(kind, None) when ``text`` evaluates to ``data`` (and, for a workflow or an infra,
    to the same under the platform's contracts), else (kind, why not)."""
    kind, contract, schema, wrappers = kind_of(source, data)
    with tempfile.TemporaryDirectory(prefix="provisioning-migrate-") as folder:
        candidate = Path(folder) / (source.stem + ".ncl")
        candidate.write_text(text, encoding="utf-8")
        try:
            own = evaluate_nickel_plain(candidate)
        except LoadError as exc:
            return kind, f"the Nickel does not evaluate: {_first_line(exc)}"
        if own != data:
            return (
                kind,
                f"the Nickel evaluates to other data than the KCL: {_difference(data, own)}",
            )
        if contract is None:
            return kind, None
        expected = data
        for key in wrappers:
            if isinstance(data, dict) and isinstance(data.get(key), dict) and len(data) == 1:
                expected = data[key]
        try:
            checked = evaluate_nickel(candidate, contract, schema=schema, wrappers=wrappers)
        except LoadError as exc:
            return kind, f"the platform's {contract} contract refuses it: {_first_line(exc)}"
        if checked != expected:
            return (
                kind,
                f"under the {contract} contract the data differs: {_difference(expected, checked)}",
            )
    return kind, None


def _first_line(exc: Exception) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return " ".join(lines[:3])[:400]


def _difference(want: Any, got: Any, where: str = "") -> str:
    if isinstance(want, dict) and isinstance(got, dict):
        for key in sorted(set(want) | set(got)):
            if key not in got:
                return f"{where}{key} is missing"
            if key not in want:
                return f"{where}{key} is extra"
            if want[key] != got[key]:
                return _difference(want[key], got[key], f"{where}{key}.")
    if isinstance(want, list) and isinstance(got, list) and len(want) == len(got):
        for index, (a, b) in enumerate(zip(want, got, strict=True)):
            if a != b:
                return _difference(a, b, f"{where}[{index}].")
    place = where.rstrip(".") or "the value"
    return f"{place}: KCL {json.dumps(want)[:80]}, Nickel {json.dumps(got)[:80]}"


def plan_file(source: Path) -> FilePlan:
    target = source.with_suffix(".ncl")
    try:
        answer = run_kcl(source, parse=True)
        data = json.loads(answer["json"]) if answer["json"].strip() else {}
        conversion = convert(data, json.loads(answer["ast"]), source.read_text(encoding="utf-8"))
    except LoadError as exc:
        return FilePlan(source, target, Action.FAILED, reason=f"KCL: {exc}")
    except (ValueError, KeyError, TypeError) as exc:
        return FilePlan(source, target, Action.FAILED, reason=f"cannot convert: {exc}")
    kind, problem = prove(source, data, conversion.text)
    plan = FilePlan(source, target, Action.CREATE, kind, unmapped=conversion.unmapped)
    if problem is not None:
        plan.action, plan.reason = Action.FAILED, problem
        return plan
    text = with_marker(source, conversion.text)
    plan.text = text
    if target.exists():
        existing = target.read_text(encoding="utf-8", errors="replace")
        if existing == text:
            plan.action = Action.UNCHANGED
            return plan
        if not ours_unedited(existing):
            plan.action = Action.KEEP
            plan.reason = f"{target.name} is hand-written or was edited: not overwritten"
            return plan
        plan.action = Action.UPDATE
        old = existing.splitlines(keepends=True)
    else:
        old = []
    plan.diff = "".join(
        difflib.unified_diff(
            old, text.splitlines(keepends=True), str(target) if old else "/dev/null", str(target)
        )
    )
    return plan


def migrate(path: Path, *, write: bool) -> list[FilePlan]:
    plans = [plan_file(source) for source in kcl_files(path)]
    if write:
        for plan in plans:
            if plan.action in (Action.CREATE, Action.UPDATE):
                plan.target.write_text(plan.text, encoding="utf-8")
    return plans
