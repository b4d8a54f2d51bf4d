"""The original platform's REST surface, over the same engine: ``/batch/*`` (batch
operations are workflows), ``/state/*`` (progress, snapshots, metrics, statistics) and
``/rollback/*`` (a workflow's checkpoint is its completed steps; restoring resumes from
it, executing a rollback undoes them)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, HTTPException, Query, status
from pydantic import BaseModel, ConfigDict

from ...schemas.loader import unwrap
from ...tasks import TaskStatus, WorkflowStatus
from ...workflow import PlanError
from ..models import Step, Workflow
from .auth import require_token
from .params import Limit, Offset
from .schemas import iso
from .tasks import Service
from .workflow_views import WorkflowPageView, WorkflowView
from .workflows import plan_error_response, workflow_command, workflow_page

router = APIRouter(dependencies=[Depends(require_token)])


class BatchSubmitted(BaseModel):
    operation_id: str
    workflow_id: str
    status: str = "queued"
    tasks: int


class Snapshot(BaseModel):
    snapshot_id: str
    workflow_id: str
    step: str
    status: str
    steps_completed: int
    completed_steps: list[str]
    created_at: str | None


class Checkpoint(BaseModel):
    checkpoint_id: str
    workflow_id: str
    name: str
    status: str
    steps_completed: int
    created_at: str | None


class RollbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    workflow_id: str | None = None
    checkpoint_id: str | None = None


async def _found(svc: Service, workflow_id: str) -> tuple[Workflow, list[Step]]:
    found = await svc.workflow(workflow_id)
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no workflow {workflow_id!r}")
    return found[0], found[1]


@router.post("/batch/execute", status_code=201, response_model=BatchSubmitted)
async def batch_execute(
    svc: Service,
    body: Annotated[
        dict[str, Any], Body(description="a batch workflow (batch_workflow = {...} or bare)")
    ],
) -> Any:
    """Validate and queue a batch workflow, in the original batch form or this one's."""
    try:
        workflow = await svc.submit_workflow(unwrap(body))
    except PlanError as exc:
        return plan_error_response(exc)
    return BatchSubmitted(
        operation_id=workflow.id, workflow_id=workflow.id, tasks=workflow.tasks_total
    )


@router.get("/batch/operations", response_model=WorkflowPageView)
async def batch_operations(
    svc: Service,
    status_: Annotated[str | None, Query(alias="status")] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> WorkflowPageView:
    """Batch operations (workflows), newest first."""
    return await workflow_page(svc, status_, limit, offset)


@router.get("/batch/operations/{operation_id}", response_model=WorkflowView)
async def batch_operation(operation_id: str, svc: Service) -> WorkflowView:
    found = await svc.workflow(operation_id)
    if found is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, detail=f"no batch operation {operation_id!r}"
        )
    return WorkflowView.of(*found)


@router.post("/batch/operations/{operation_id}/cancel", response_model=WorkflowView)
async def batch_cancel(operation_id: str, svc: Service) -> WorkflowView:
    return await workflow_command(svc, operation_id, "cancel")


@router.get("/state/workflows/{workflow_id}/progress")
async def workflow_progress(workflow_id: str, svc: Service) -> dict[str, Any]:
    """Progress of a workflow: overall, per step, and what runs now."""
    workflow, steps = await _found(svc, workflow_id)
    view = WorkflowView.of(workflow)
    return {
        "workflow_id": workflow.id,
        "status": workflow.status.value,
        "progress": view.progress,
        "tasks": view.tasks,
        "steps_completed": workflow.steps_completed,
        "steps_total": sum(1 for s in steps if s.kind == "run"),
        "current_steps": [s.step_id for s in steps if s.status == "running"],
        "steps": [
            {
                "id": s.step_id,
                "kind": s.kind,
                "status": s.status,
                "completed": s.completed,
                "total": s.total,
            }
            for s in steps
        ],
    }


@router.get("/state/workflows/{workflow_id}/snapshots", response_model=list[Snapshot])
async def workflow_snapshots(workflow_id: str, svc: Service) -> list[Snapshot]:
    """The workflow's checkpoints, oldest first: one after every step that finished."""
    workflow, steps = await _found(svc, workflow_id)
    finished = sorted(
        (s for s in steps if s.finished_at is not None), key=lambda s: (s.finished_at, s.position)
    )
    snapshots, completed = [], []
    for number, step in enumerate(finished, start=1):
        if step.status == "completed" and step.kind == "run":
            completed.append(step.step_id)
        snapshots.append(
            Snapshot(
                snapshot_id=f"{workflow.id}:{number}",
                workflow_id=workflow.id,
                step=step.step_id,
                status=step.status,
                steps_completed=len(completed),
                completed_steps=list(completed),
                created_at=iso(step.finished_at),
            )
        )
    return snapshots


async def _task_counts(svc: Service) -> dict[str, int]:
    return {s.value: (await svc.list_tasks(s, 1, 0)).total for s in TaskStatus}


async def _workflow_counts(svc: Service) -> dict[str, int]:
    return {s.value: (await svc.workflows(s, 1, 0))[1] for s in WorkflowStatus}


@router.get("/state/system/metrics")
async def system_metrics(svc: Service) -> dict[str, Any]:
    """This node and its queue: running tasks, limits, counts by status, nodes."""
    node = await svc.status()
    return {
        "node_id": node["node_id"],
        "uptime_seconds": node["uptime_seconds"],
        "running_here": node["running_here"],
        "max_concurrent_tasks": node["max_concurrent_tasks"],
        "tasks": await _task_counts(svc),
        "storage": node["storage"],
        "nodes": len(node["nodes"]),
    }


@router.get("/state/statistics")
async def statistics(svc: Service) -> dict[str, Any]:
    """Workflows and tasks by status, and the share that completed."""
    workflows = await _workflow_counts(svc)
    tasks = await _task_counts(svc)
    finished = sum(
        workflows[s] for s in ("completed", "failed", "cancelled", "rolled_back", "rollback_failed")
    )
    return {
        "workflows": {"total": sum(workflows.values()), **workflows},
        "tasks": {"total": sum(tasks.values()), **tasks},
        "success_rate": round(workflows["completed"] / finished, 4) if finished else None,
    }


@router.get("/rollback/checkpoints", response_model=list[Checkpoint])
async def checkpoints(
    svc: Service,
    limit: Limit = 50,
    offset: Offset = 0,
) -> list[Checkpoint]:
    """The latest checkpoint of each workflow (its completed steps), newest first."""
    found, _ = await svc.workflows(None, limit, offset)
    return [
        Checkpoint(
            checkpoint_id=w.id,
            workflow_id=w.id,
            name=w.name,
            status=w.status.value,
            steps_completed=w.steps_completed,
            created_at=iso(w.checkpoint_at),
        )
        for w in found
        if w.checkpoint_at is not None
    ]


@router.post("/rollback/execute", response_model=WorkflowView)
async def rollback_execute(body: RollbackRequest, svc: Service) -> WorkflowView:
    """Undo what a finished workflow completed (``workflow_id`` or ``checkpoint_id``)."""
    given = [v for v in (body.workflow_id, body.checkpoint_id) if v]
    if len(set(given)) != 1:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_ENTITY,
            detail="give workflow_id or checkpoint_id (the same workflow when both)",
        )
    return await workflow_command(svc, given[0], "rollback")


@router.post("/rollback/restore/{checkpoint_id}", response_model=WorkflowView)
async def rollback_restore(checkpoint_id: str, svc: Service) -> WorkflowView:
    """Resume a failed or cancelled workflow from its checkpoint (what completed stays)."""
    return await workflow_command(svc, checkpoint_id, "retry")
