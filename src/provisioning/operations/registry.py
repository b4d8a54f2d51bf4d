"""Registered operations. Every operation runs through the task contract, so the
same handler works in direct mode and on the orchestrator."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Preference(StrEnum):
    """Where an operation runs in ``auto`` mode when no pattern decides: complex,
    long or multi-step work goes to the orchestrator, quick reads run directly."""

    ORCHESTRATED = "orchestrated"
    DIRECT = "direct"


@dataclass(frozen=True)
class Operation:
    name: str
    prefers: Preference
    summary: str


_REGISTRY: dict[str, Operation] = {
    op.name: op for op in (Operation("task.submit", Preference.ORCHESTRATED, "run one task"),)
}


def lookup(name: str) -> Operation:
    """The registered operation, or an orchestrated default for names not (yet) known."""
    return _REGISTRY.get(name) or Operation(name, Preference.ORCHESTRATED, name)
