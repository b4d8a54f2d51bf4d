"""The workflow engine: spec -> steps and tasks, rollback planning, retry, cancel.

Progression itself (a finished step releasing its dependents) happens in the
store, inside the transaction that ends a task; the engine decides *what* to
create and *when* a workflow changes phase.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any

from ..config import Settings
from ..tasks import NewTask, RetryPolicy, RunSpec, TaskStatus, WorkflowStatus
from ..workflow import Plan, WorkflowSpec, build_plan
from ..workflow.spec import OperationSpec
from ..workflow.validate import check_plan, op_params, parse_spec, resolve_run
from . import observe
from .events import EventBus
from .flow import OperationNode, can_request_rollback, can_retry, undo_order
from .models import NewStep, Task, Workflow
from .storeclient import StoreClient

log = logging.getLogger("provisioning.orchestrator.engine")

UNDO_PREFIX = "undo:"


class WorkflowConflict(Exception):
    """The workflow is not in a state that allows the requested change."""


def _task_for(
    spec: WorkflowSpec, op: OperationSpec, run: RunSpec, item: Any, index: int, count: int
) -> NewTask:
    params = op_params(op)
    if op.items is not None:
        params["item"] = item
    # Named after what it acts on (``.../taskserv-runc/web-2``) when its item is a name.
    if op.items is not None and isinstance(item, str) and item:
        suffix = f"/{item}"
    else:
        suffix = f"[{index}]" if count > 1 else ""
    return NewTask(
        name=f"{spec.name}/{op.id}{suffix}",
        run=run,
        params=params,
        priority=op.priority or spec.priority,
        timeout_seconds=op.timeout,
        retry=op.retry or spec.retry,
    )


def expand(plan: Plan) -> list[NewStep]:
    """One step per operation, one task per item."""
    steps = []
    for position, step in enumerate(plan.steps):
        run, _ = resolve_run(step.op)
        tasks = tuple(
            _task_for(plan.spec, step.op, run, item, index, len(step.items))
            for index, item in enumerate(step.items)
        )
        steps.append(
            NewStep(
                step_id=step.id,
                kind="run",
                position=position,
                layer=step.layer,
                on_failure=step.op.on_failure.value,
                depends_on=tuple(step.op.depends_on),
                tasks=tasks,
            )
        )
    return steps


def plan_undo(spec: WorkflowSpec, done_steps: set[str], tasks: Iterable[Task]) -> list[NewStep]:
    """Undo steps for the completed operations that have an undo, in the order of
    :func:`~.flow.undo_order`; each undoes the completed items of its operation."""
    ops = {op.id: op for op in spec.operations}
    nodes = [
        OperationNode(op.id, tuple(op.depends_on), op.undo is not None) for op in spec.operations
    ]
    by_step: dict[str, list[Task]] = {}
    for task in tasks:
        if task.step_id is not None and task.status is TaskStatus.COMPLETED:
            by_step.setdefault(task.step_id, []).append(task)
    steps = []
    for undo in undo_order(nodes, done_steps):
        op = ops[undo.op_id]
        assert op.undo is not None
        done_tasks = sorted(by_step.get(undo.op_id, []), key=lambda t: t.item or 0)
        steps.append(
            NewStep(
                step_id=UNDO_PREFIX + undo.op_id,
                kind="undo",
                position=undo.position,
                layer=undo.layer,
                on_failure="fail",
                depends_on=tuple(UNDO_PREFIX + d for d in undo.waits_for),
                tasks=tuple(
                    NewTask(
                        name=f"{spec.name}/{UNDO_PREFIX}{undo.op_id}"
                        + (f"[{t.item}]" if len(done_tasks) > 1 else ""),
                        run=op.undo,
                        params={**t.params, "undo": {"task_id": t.id, "result": t.result}},
                        priority=op.priority or spec.priority,
                        timeout_seconds=op.timeout,
                        retry=op.retry or spec.retry,
                    )
                    for t in done_tasks
                ),
            )
        )
    return steps


class WorkflowEngine:
    """Workflow commands of one orchestrator node."""

    def __init__(self, store: StoreClient, settings: Settings, bus: EventBus) -> None:
        self._store = store
        self._settings = settings
        self._bus = bus

    def _defaults(self) -> dict[str, Any]:
        return {
            "default_timeout": self._settings.executor.task_timeout_seconds,
            "default_retry": RetryPolicy(),
            "now": time.time(),
        }

    async def submit(self, data: Any) -> Workflow:
        """Validate a workflow (as JSON data) and queue all of it; raises PlanError."""
        spec = parse_spec(data)
        plan = build_plan(spec)
        check_plan(plan, self._settings)
        workflow: Workflow = await self._store.run(
            self._store.store.create_workflow,
            name=spec.name,
            version=spec.version,
            spec=spec.model_dump(mode="json", exclude_none=True),
            priority=spec.priority,
            parallel_limit=spec.parallel_limit,
            rollback_enabled=spec.rollback_enabled,
            steps=expand(plan),
            **self._defaults(),
        )
        self.publish(workflow, "created")
        return workflow

    def publish(self, workflow: Workflow, name: str) -> None:
        self._bus.publish("workflow", name, summary(workflow))
        observe.workflow_changed(self._store, workflow)

    async def after_task(self, task: Task) -> None:
        """A task ended and moved its workflow to a new status: tell watchers, and start
        the rollback when one is due. (Per-task progress reaches watchers as task events.)"""
        if task.workflow_id is None or task.workflow_status is None:
            return
        workflow: Workflow | None = await self._store.run(
            self._store.store.get_workflow, task.workflow_id
        )
        if workflow is None:
            return
        self.publish(workflow, "finished" if workflow.status.finished else "changed")
        if workflow.status is WorkflowStatus.ROLLBACK_PENDING:
            await self.start_rollback(workflow.id)

    async def start_rollback(self, workflow_id: str) -> Workflow | None:
        workflow: Workflow | None = await self._store.run(
            self._store.store.get_workflow, workflow_id
        )
        if workflow is None or workflow.status is not WorkflowStatus.ROLLBACK_PENDING:
            return workflow
        spec = WorkflowSpec.model_validate(
            await self._store.run(self._store.store.workflow_spec, workflow_id)
        )
        steps = await self._store.run(self._store.store.workflow_steps, workflow_id)
        # A fan-out step that partly failed still has completed items to undo.
        done = {s.step_id for s in steps if s.kind == "run" and s.completed > 0}
        tasks = await self._store.run(self._store.store.workflow_tasks, workflow_id)
        undo = plan_undo(spec, done, tasks)
        started: Workflow | None = await self._store.run(
            self._store.store.begin_undo, workflow_id, undo, **self._defaults()
        )
        if started is not None:
            log.info("workflow %s: rolling back %d step(s)", workflow_id, len(undo))
            self.publish(started, "rollback_started")
        return started

    async def resume_pending_rollbacks(self) -> None:
        """At start: a rollback decided before a crash but not yet planned."""
        for workflow in await self._store.run(
            self._store.store.workflows_in, WorkflowStatus.ROLLBACK_PENDING
        ):
            await self.start_rollback(workflow.id)

    async def retry(self, workflow_id: str) -> Workflow:
        workflow = await self._get(workflow_id)
        if not can_retry(workflow.status):
            raise WorkflowConflict(
                f"workflow {workflow_id} is {workflow.status}; only a failed or cancelled "
                "workflow can be retried"
            )
        reset = await self._store.run(
            self._store.store.reset_workflow, workflow_id, now=time.time()
        )
        if reset is None:
            raise KeyError(workflow_id)
        self.publish(reset, "retried")
        return reset

    async def rollback(self, workflow_id: str) -> Workflow:
        workflow = await self._get(workflow_id)
        if not workflow.rollback_enabled:
            raise WorkflowConflict(f"workflow {workflow_id} has rollback_enabled = false")
        if not can_request_rollback(workflow.status, workflow.phase):
            raise WorkflowConflict(
                f"workflow {workflow_id} is {workflow.status}; only a finished workflow "
                "that was not rolled back can be rolled back"
            )
        await self._store.run(self._store.store.request_rollback, workflow_id)
        started = await self.start_rollback(workflow_id)
        return started or await self._get(workflow_id)

    async def cancel(self, workflow_id: str) -> tuple[Workflow, list[str]]:
        found = await self._store.run(
            self._store.store.cancel_workflow, workflow_id, now=time.time()
        )
        if found is None:
            raise KeyError(workflow_id)
        workflow, running = found
        self.publish(workflow, "cancel_requested" if running else "finished")
        return workflow, running

    async def _get(self, workflow_id: str) -> Workflow:
        workflow: Workflow | None = await self._store.run(
            self._store.store.get_workflow, workflow_id
        )
        if workflow is None:
            raise KeyError(workflow_id)
        return workflow


def summary(workflow: Workflow) -> dict[str, Any]:
    """What workflow events carry."""
    return {
        "workflow_id": workflow.id,
        "name": workflow.name,
        "status": workflow.status.value,
        "phase": workflow.phase,
        "tasks_total": workflow.tasks_total,
        "tasks_completed": workflow.tasks_completed,
        "tasks_failed": workflow.tasks_failed,
        "tasks_open": workflow.tasks_open,
        "error": workflow.error,
    }
