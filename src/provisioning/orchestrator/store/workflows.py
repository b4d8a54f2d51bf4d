"""The workflow commands of every store, once: cancel, retry, rollback and its start
apply :mod:`..flow.progress` to one workflow inside one transaction, and every store
writes a new workflow's rows alike. A backend gives the transaction
(:meth:`WorkflowVerbs._on_workflow`) and the workflow's persistence in its dialect
(a :class:`StoreWorkflow`)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol, TypeVar, Unpack

from ...tasks import Priority, WorkflowStatus
from .. import flow
from ..flow import progress
from ..models import NewStep, Workflow
from ..models.records import NEW_STEP_FIELDS, new_task_fields
from .base import NewWorkflow, TaskDefaults

T = TypeVar("T")


class StoreWorkflow(progress.WorkflowTx, Protocol):
    """What the commands need of a workflow besides its progression."""

    def workflow(self) -> Workflow: ...

    def add_steps(self, steps: Sequence[NewStep], **defaults: Unpack[TaskDefaults]) -> int:
        """Insert steps with their edges and tasks; the number of tasks."""

    def mark_rollback(self) -> None:
        """The workflow waits for its rollback to be planned."""


def new_workflow_fields(workflow_id: str, new: NewWorkflow) -> dict[str, Any]:
    """A new workflow's own fields as every store writes them (no task counted yet)."""
    return {
        "id": workflow_id,
        "name": new["name"],
        "version": new["version"],
        "status": WorkflowStatus.QUEUED.value,
        "priority": int(Priority.parse(new["priority"])),
        "parallel_limit": new["parallel_limit"],
        "rollback_enabled": bool(new["rollback_enabled"]),
        "created_at": float(new["now"]),
    }


def new_steps(
    workflow_id: str, steps: Sequence[NewStep], **defaults: Unpack[TaskDefaults]
) -> Iterator[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """Each new step's fields (``NEW_STEP_FIELDS``) with its tasks' fields: ready, its
    tasks pending, when it depends on nothing."""
    for step in steps:
        waiting = len(step.depends_on)
        step_status, task_status = flow.initial_status(waiting)
        values = (step.step_id, step.kind, step.position, step.layer, step.on_failure)
        row = dict(zip(NEW_STEP_FIELDS, (workflow_id, *values), strict=False))
        row.update(status=step_status.value, waiting_on=waiting, total=len(step.tasks))
        tasks = [
            new_task_fields(
                task,
                status=task_status.value,
                workflow_id=workflow_id,
                step_id=step.step_id,
                item=item,
                **defaults,
            )
            for item, task in enumerate(step.tasks)
        ]
        yield row, tasks


class WorkflowVerbs(ABC):
    """The workflow commands of :class:`~.base.Store`, over a backend's transaction."""

    @abstractmethod
    def _on_workflow(
        self, verb: str, workflow_id: str, act: Callable[[StoreWorkflow], T]
    ) -> tuple[Workflow, T] | None:
        """Run ``act`` on the workflow in one transaction (its row locked first where
        the backend locks rows): the workflow as it left it and what it returned;
        ``None`` if there is no such workflow."""

    def cancel_workflow(self, workflow_id: str, *, now: float) -> tuple[Workflow, list[str]] | None:
        """Cancel what has not started; flag running tasks. Returns them for a local stop."""
        return self._on_workflow("cancel_workflow", workflow_id, lambda w: progress.cancel(w, now))

    def reset_workflow(self, workflow_id: str, *, now: float) -> Workflow | None:
        """Resume a finished, unsuccessful workflow from its checkpoint: tasks of the
        current phase that did not complete start again; completed ones are kept."""
        done = self._on_workflow("reset_workflow", workflow_id, lambda w: progress.reset(w, now))
        return None if done is None else done[0]

    def request_rollback(self, workflow_id: str) -> Workflow | None:
        """Mark a finished workflow for rollback (the engine then plans the undo steps)."""

        def act(w: StoreWorkflow) -> None:
            row = w.row()
            if flow.can_request_rollback(WorkflowStatus(row["status"]), row["phase"]):
                w.mark_rollback()

        done = self._on_workflow("request_rollback", workflow_id, act)
        return None if done is None else done[0]

    def begin_undo(
        self, workflow_id: str, steps: Sequence[NewStep], **defaults: Unpack[TaskDefaults]
    ) -> Workflow | None:
        """Add the undo steps of a rollback and start it; ``None`` unless the workflow
        was waiting for exactly that (so a repeated call changes nothing)."""

        def act(w: StoreWorkflow) -> bool:
            if w.row()["status"] != WorkflowStatus.ROLLBACK_PENDING.value:
                return False
            progress.begin_undo(w, w.add_steps(steps, **defaults), defaults["now"])
            return True

        done = self._on_workflow("begin_undo", workflow_id, act)
        return None if done is None or not done[1] else done[0]
