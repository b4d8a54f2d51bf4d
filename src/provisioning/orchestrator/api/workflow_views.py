"""Response shapes of the workflow endpoints."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from ..models import Step, Task, Workflow
from .schemas import iso, same_named


class WorkflowTaskView(BaseModel):
    id: str
    name: str
    status: str
    progress: int
    progress_message: str | None
    attempt: int
    item: int | None
    error: str | None
    result: Any
    started_at: str | None
    completed_at: str | None

    @classmethod
    def of(cls, task: Task) -> WorkflowTaskView:
        return cls(
            **same_named(
                task,
                cls,
                status=task.status.value,
                started_at=iso(task.started_at),
                completed_at=iso(task.completed_at),
            )
        )


class StepView(BaseModel):
    id: str
    kind: str
    layer: int
    status: str
    on_failure: str
    depends_on: list[str]
    total: int
    completed: int
    failed: int
    finished_at: str | None
    tasks: list[WorkflowTaskView]


class WorkflowView(BaseModel):
    id: str
    name: str
    version: str
    status: str
    phase: str
    error: str | None
    priority: str
    parallel_limit: int
    rollback_enabled: bool
    progress: int
    tasks: dict[str, int]
    checkpoint: dict[str, Any]
    created_at: str | None
    started_at: str | None
    completed_at: str | None
    steps: list[StepView] | None = None
    # With steps: how many there are in all (``steps`` may be one page of them).
    steps_total: int | None = None

    @classmethod
    def of(
        cls,
        wf: Workflow,
        steps: list[Step] | None = None,
        tasks: list[Task] | None = None,
        page: slice = slice(None),
    ) -> WorkflowView:
        done = [s.step_id for s in steps or [] if s.status == "completed" and s.kind == "run"]
        shown = None if steps is None else steps[page]
        wanted = {s.step_id for s in shown or []}
        by_step: dict[str | None, list[Task]] = {}
        for task in tasks or []:
            if task.step_id in wanted:
                by_step.setdefault(task.step_id, []).append(task)
        return cls(
            **same_named(
                wf,
                cls,
                status=wf.status.value,
                priority=wf.priority.label,
                # Completed work only: a cancelled or failed workflow never shows 100 %.
                progress=100 * wf.tasks_completed // max(wf.tasks_total, 1),
                tasks={
                    "total": wf.tasks_total,
                    "completed": wf.tasks_completed,
                    "failed": wf.tasks_failed,
                    "open": wf.tasks_open,
                },
                checkpoint={
                    "steps_completed": wf.steps_completed,
                    "completed_steps": done if steps is not None else None,
                    "updated_at": iso(wf.checkpoint_at),
                },
                created_at=iso(wf.created_at),
                started_at=iso(wf.started_at),
                completed_at=iso(wf.completed_at),
                steps_total=None if steps is None else len(steps),
                steps=None
                if shown is None
                else [
                    StepView(
                        **same_named(
                            s,
                            StepView,
                            id=s.step_id,
                            depends_on=list(s.depends_on),
                            finished_at=iso(s.finished_at),
                            tasks=[WorkflowTaskView.of(t) for t in by_step.get(s.step_id, [])],
                        )
                    )
                    for s in shown
                ],
            )
        )


class WorkflowPageView(BaseModel):
    workflows: list[WorkflowView]
    total: int
    limit: int
    offset: int


class WorkflowSubmittedView(BaseModel):
    workflow_id: str
    status: str = "queued"
    tasks: int
