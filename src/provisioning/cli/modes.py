"""Execution mode resolution: ``--orchestrated``/``--direct`` flags, ``[execution]``
``default_mode`` and the ``force_orchestrated``/``force_direct`` glob lists."""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, NamedTuple

from ..config.rules import ExecutionMode

if TYPE_CHECKING:
    from ..config.models import ExecutionSection


class Decision(NamedTuple):
    """The mode an operation runs in, and why (shown with ``-v`` and in errors)."""

    mode: ExecutionMode  # never AUTO
    reason: str


def _best_match(operation: str, patterns: list[str]) -> str | None:
    """The most specific pattern matching ``operation``: an exact name, else the
    longest glob."""
    matches = [p for p in patterns if fnmatchcase(operation, p)]
    if not matches:
        return None
    return max(matches, key=lambda p: _rank(operation, p))


def resolve(
    operation: str,
    execution: ExecutionSection,
    *,
    orchestrated: bool = False,
    direct: bool = False,
) -> Decision:
    """Decide direct or orchestrated for ``operation``; flags win over everything."""
    if orchestrated and direct:
        raise ValueError("--orchestrated and --direct exclude each other")
    if orchestrated:
        return Decision(ExecutionMode.ORCHESTRATED, "--orchestrated flag")
    if direct:
        return Decision(ExecutionMode.DIRECT, "--direct flag")
    if execution.default_mode is not ExecutionMode.AUTO:
        return Decision(
            execution.default_mode, f"execution.default_mode = {execution.default_mode}"
        )
    forced_orch = _best_match(operation, execution.force_orchestrated)
    forced_direct = _best_match(operation, execution.force_direct)
    if forced_orch and forced_direct:
        # Both lists match (batch.list vs *.list): the more specific pattern wins.
        rank = _rank(operation, forced_orch) >= _rank(operation, forced_direct)
        forced_direct, forced_orch = (None, forced_orch) if rank else (forced_direct, None)
    if forced_orch:
        return Decision(ExecutionMode.ORCHESTRATED, f"execution.force_orchestrated '{forced_orch}'")
    if forced_direct:
        return Decision(ExecutionMode.DIRECT, f"execution.force_direct '{forced_direct}'")
    from ..operations import Preference, lookup

    preference = lookup(operation).prefers
    mode = (
        ExecutionMode.ORCHESTRATED
        if preference is Preference.ORCHESTRATED
        else ExecutionMode.DIRECT
    )
    return Decision(mode, f"auto: {operation} prefers {preference}")


def _rank(operation: str, pattern: str) -> tuple[bool, int]:
    return (pattern == operation, len(pattern.replace("*", "")))
