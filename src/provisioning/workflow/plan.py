"""From a validated spec to a dependency plan: ids, references, cycles, layers."""

from __future__ import annotations

import graphlib
from dataclasses import dataclass, field
from typing import Any

from .spec import OperationSpec, WorkflowSpec


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a workflow, at ``where`` (e.g. ``operations[2].depends_on``)."""

    where: str
    message: str
    op_id: str | None = None

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


class PlanError(ValueError):
    """The workflow cannot run; ``problems`` says every reason found."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(str(p) for p in problems))
        self.problems = problems


@dataclass(frozen=True)
class PlannedStep:
    """An operation placed in the DAG; ``items`` are the tasks it fans out into."""

    op: OperationSpec
    layer: int
    dependents: tuple[str, ...]
    items: tuple[Any, ...] = field(default=(None,))

    @property
    def id(self) -> str:
        return self.op.id


@dataclass(frozen=True)
class Plan:
    spec: WorkflowSpec
    steps: tuple[PlannedStep, ...]  # in topological order

    @property
    def layers(self) -> list[list[PlannedStep]]:
        grouped: list[list[PlannedStep]] = []
        for step in self.steps:
            while len(grouped) <= step.layer:
                grouped.append([])
            grouped[step.layer].append(step)
        return grouped

    @property
    def task_count(self) -> int:
        return sum(len(step.items) for step in self.steps)


def _topological_order(spec: WorkflowSpec, dependents: dict[str, list[str]]) -> list[str] | None:
    """Kahn's order over the edge lists already built, or ``None`` on a cycle. (graphlib
    keeps a set per node and a node record per edge: ~100 MB more at a million edges.)"""
    waiting = {op.id: len(op.depends_on) for op in spec.operations}  # no repeats (spec)
    order = [op_id for op_id, count in waiting.items() if count == 0]
    for op_id in order:  # grows while it is walked
        for dependent in dependents[op_id]:
            waiting[dependent] -= 1
            if waiting[dependent] == 0:
                order.append(dependent)
    return order if len(order) == len(waiting) else None


def _cycle_problem(spec: WorkflowSpec, index_of: dict[str, int]) -> Problem:
    """The cycle, named the way graphlib finds it (only on this error path)."""
    sorter = graphlib.TopologicalSorter({op.id: set(op.depends_on) for op in spec.operations})
    try:
        sorter.prepare()
    except graphlib.CycleError as exc:
        cycle = list(exc.args[1])
        first = cycle[0]
        return Problem(
            f"operations[{index_of[first]}].depends_on",
            f"dependency cycle: {' -> '.join(reversed(cycle))}",
            first,
        )
    raise AssertionError("no cycle found where Kahn's order stopped short")


def build_plan(spec: WorkflowSpec) -> Plan:
    """Check references and cycles and order the operations; raises :class:`PlanError`."""
    problems: list[Problem] = []
    index_of: dict[str, int] = {}
    for index, op in enumerate(spec.operations):
        if op.id in index_of:
            problems.append(
                Problem(
                    f"operations[{index}].id",
                    f"duplicate id {op.id!r} (first at operations[{index_of[op.id]}])",
                    op.id,
                )
            )
        else:
            index_of[op.id] = index
    for index, op in enumerate(spec.operations):
        for dep in op.depends_on:
            if dep not in index_of:
                problems.append(
                    Problem(
                        f"operations[{index}].depends_on",
                        f"unknown operation {dep!r} (known: {', '.join(sorted(index_of))})",
                        op.id,
                    )
                )
            elif dep == op.id:
                problems.append(
                    Problem(
                        f"operations[{index}].depends_on",
                        "an operation cannot depend on itself",
                        op.id,
                    )
                )
        if op.items is not None and not op.items:
            problems.append(Problem(f"operations[{index}].items", "must not be empty", op.id))
    if problems:
        raise PlanError(problems)

    dependents: dict[str, list[str]] = {op.id: [] for op in spec.operations}
    for op in spec.operations:
        for dep in op.depends_on:
            dependents[dep].append(op.id)
    order = _topological_order(spec, dependents)
    if order is None:
        raise PlanError([_cycle_problem(spec, index_of)])

    layer: dict[str, int] = {}
    by_id = {op.id: op for op in spec.operations}
    steps = []
    for op_id in order:
        op = by_id[op_id]
        layer[op_id] = 1 + max((layer[d] for d in op.depends_on), default=-1)
        items = tuple(op.items) if op.items is not None else (None,)
        steps.append(PlannedStep(op, layer[op_id], tuple(dependents[op_id]), items))
    steps.sort(key=lambda s: (s.layer, index_of[s.id]))
    return Plan(spec=spec, steps=tuple(steps))
