"""Building and driving workflows through the Store verbs alone, with explicit times."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from provisioning.orchestrator.models import Claim, NewStep, Workflow
from provisioning.orchestrator.store import Store
from provisioning.tasks import AttemptStatus, NewTask, Outcome, RetryPolicy

T0 = 1_700_000_000.0
LEASE = 30.0
DEFAULTS: dict[str, Any] = {
    "default_timeout": 600.0,
    "default_retry": RetryPolicy(max_attempts=1),
}
NODE = "node-a"


@dataclass(frozen=True)
class Op:
    """A step as a test writes it: what it depends on, how many items, its policy."""

    depends_on: tuple[str, ...] = ()
    items: int = 1
    on_failure: str = "fail"


def new_steps(ops: Mapping[str, Op], *, kind: str = "run") -> list[NewStep]:
    steps = []
    for position, (step_id, op) in enumerate(ops.items()):
        suffix = (lambda i: f"[{i}]") if op.items > 1 else (lambda i: "")
        steps.append(
            NewStep(
                step_id=step_id,
                kind=kind,
                position=position,
                layer=0,
                on_failure=op.on_failure,
                depends_on=op.depends_on,
                tasks=tuple(
                    NewTask.model_validate(
                        {"name": f"{step_id}{suffix(i)}", "run": {"command": ["true"]}}
                    )
                    for i in range(op.items)
                ),
            )
        )
    return steps


def create(
    store: Store,
    ops: Mapping[str, Op],
    *,
    parallel_limit: int = 10,
    rollback_enabled: bool = True,
    now: float = T0,
    name: str = "wf",
) -> Workflow:
    return store.create_workflow(
        name=name,
        version="1.0",
        spec={"name": name, "operations": list(ops)},
        priority="normal",
        parallel_limit=parallel_limit,
        rollback_enabled=rollback_enabled,
        steps=new_steps(ops),
        now=now,
        **DEFAULTS,
    )


@dataclass
class Driver:
    """Claims what is ready and ends attempts, keeping the clock."""

    store: Store
    now: float = T0
    running: dict[str, Claim] = field(default_factory=dict)

    def tick(self) -> float:
        self.now += 1
        return self.now

    def claim(self, limit: int = 100) -> list[str]:
        claims = self.store.claim(NODE, limit, now=self.tick(), lease_seconds=LEASE)
        for claim in claims:
            self.running[claim.task.name] = claim
        return sorted(claim.task.name for claim in claims)

    def end(self, name: str, status: AttemptStatus = AttemptStatus.COMPLETED) -> Any:
        claim = self.running.pop(name)
        error = None if status is AttemptStatus.COMPLETED else f"{name} {status.value}"
        outcome = Outcome(status, exit_code=0 if error is None else 1, error=error)
        return self.store.finish(claim.task.id, claim.attempt, outcome, now=self.tick())

    def run(self, outcomes: Mapping[str, AttemptStatus] | None = None) -> list[str]:
        """Claim everything ready and end it (completed unless ``outcomes`` says)."""
        names = self.claim()
        for name in names:
            self.end(name, (outcomes or {}).get(name, AttemptStatus.COMPLETED))
        return names


def state(store: Store, workflow_id: str) -> dict[str, Any]:
    """What a test compares: the workflow's status and counters, each step's status, and
    each task's status by name."""
    wf = store.get_workflow(workflow_id)
    assert wf is not None
    return {
        "status": wf.status.value,
        "phase": wf.phase,
        "open": wf.tasks_open,
        "completed": wf.tasks_completed,
        "failed": wf.tasks_failed,
        "steps_completed": wf.steps_completed,
        "steps": {s.step_id: s.status for s in store.workflow_steps(workflow_id)},
        "tasks": {t.name: t.status.value for t in store.workflow_tasks(workflow_id)},
    }


def errors(store: Store, workflow_id: str) -> dict[str, str | None]:
    return {t.name: t.error for t in store.workflow_tasks(workflow_id)}


def undo_steps(
    store: Store, workflow_id: str, order: Iterable[tuple[str, tuple[str, ...]]]
) -> list[NewStep]:
    """Undo steps (``undo:<id>``), each undoing every completed task of its step."""
    done = {
        t.step_id: t for t in store.workflow_tasks(workflow_id) if t.status.value == "completed"
    }
    steps = []
    for position, (op_id, waits_for) in enumerate(order):
        tasks = (
            (NewTask.model_validate({"name": f"undo:{op_id}", "run": {"command": ["true"]}}),)
            if op_id in done
            else ()
        )
        steps.append(
            NewStep(
                step_id=f"undo:{op_id}",
                kind="undo",
                position=position,
                layer=0,
                on_failure="fail",
                depends_on=tuple(f"undo:{w}" for w in waits_for),
                tasks=tasks,
            )
        )
    return steps
