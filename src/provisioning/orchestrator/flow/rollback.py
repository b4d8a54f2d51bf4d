"""The rollback order: undo completed operations in reverse dependency order."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class OperationNode:
    """What the undo order needs of an operation."""

    id: str
    depends_on: tuple[str, ...]
    has_undo: bool


@dataclass(frozen=True)
class UndoStep:
    """One operation to undo, after the undo steps in ``waits_for``."""

    op_id: str
    position: int
    layer: int
    waits_for: tuple[str, ...]


def undo_order(operations: Sequence[OperationNode], done: set[str]) -> list[UndoStep]:
    """Undo steps for the completed operations that have an undo: an operation is
    undone only after every undoable operation that depended on it (directly or
    through operations without an undo); within a layer, later operations first."""
    index = {op.id: i for i, op in enumerate(operations)}
    undoable = {op.id for op in operations if op.id in done and op.has_undo}
    dependents: dict[str, set[str]] = {op.id: set() for op in operations}
    for op in operations:
        for dep in op.depends_on:
            dependents[dep].add(op.id)

    def nearest_undoable(op_id: str) -> set[str]:
        found: set[str] = set()
        stack = list(dependents[op_id])
        seen: set[str] = set()
        while stack:
            current = stack.pop()
            if current in seen:
                continue
            seen.add(current)
            if current in undoable:
                found.add(current)
            else:
                stack.extend(dependents[current])
        return found

    waits_for = {op_id: nearest_undoable(op_id) for op_id in undoable}
    layer: dict[str, int] = {}

    def depth(op_id: str) -> int:
        if op_id not in layer:
            layer[op_id] = 1 + max((depth(d) for d in waits_for[op_id]), default=-1)
        return layer[op_id]

    order = sorted(undoable, key=lambda op_id: (depth(op_id), -index[op_id]))
    return [
        UndoStep(op_id, position, depth(op_id), tuple(sorted(waits_for[op_id])))
        for position, op_id in enumerate(order)
    ]
