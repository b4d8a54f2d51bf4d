"""``/workflows``: batch submission, listing, inspection, cancel, retry, rollback."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from ...schemas.loader import loads_shared, unwrap
from ...tasks import WorkflowStatus
from ...workflow import PlanError
from ..engine import WorkflowConflict
from ..models import Workflow
from .auth import require_token
from .filters import parse_status
from .params import MAX_QUERY_INT, Limit, Offset
from .tasks import Service
from .waiting import Wait, Watch
from .workflow_views import WorkflowPageView, WorkflowSubmittedView, WorkflowView

router = APIRouter(dependencies=[Depends(require_token)])
WORKFLOW_WATCH: Watch[Workflow] = Watch("workflow", lambda w: w.status.finished)


def _not_found(workflow_id: str) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no workflow {workflow_id!r}")


def plan_error_response(exc: PlanError) -> JSONResponse:
    return JSONResponse(
        status_code=422,
        content={
            "error": str(exc),
            "problems": [
                {"where": p.where, "message": p.message, "operation": p.op_id} for p in exc.problems
            ],
        },
    )


async def workflow_body(request: Request) -> dict[str, Any]:
    """The request's JSON object, decoded with its repeated names shared (a large
    workflow's dependency lists repeat each name many times)."""
    try:
        data = loads_shared(await request.body())
    except ValueError as exc:
        why = (
            f"{exc.msg} at character {exc.pos}"
            if isinstance(exc, json.JSONDecodeError)
            else str(exc)
        )
        raise RequestValidationError(
            [{"type": "json_invalid", "loc": ("body",), "msg": why, "ctx": {"error": why}}]
        ) from None
    if not isinstance(data, dict):
        raise RequestValidationError(
            [{"type": "dict_type", "loc": ("body",), "msg": "Input should be a valid dictionary"}]
        )
    return data


@router.post(
    "/workflows/batch/submit",
    status_code=status.HTTP_201_CREATED,
    response_model=WorkflowSubmittedView,
    responses={422: {"description": "the workflow is invalid; `problems` lists why"}},
    openapi_extra={
        "requestBody": {
            "description": "the evaluated workflow",
            "required": True,
            "content": {"application/json": {"schema": {"type": "object"}}},
        }
    },
)
async def submit_batch(
    svc: Service, body: Annotated[dict[str, Any], Depends(workflow_body)]
) -> Any:
    """Validate a workflow (the evaluated Nickel/JSON/YAML/TOML/KCL file, this platform's
    form or the original's batch form, bare or as ``batch_workflow``) and queue it whole."""
    try:
        workflow = await svc.submit_workflow(unwrap(body))
    except PlanError as exc:
        return plan_error_response(exc)
    return WorkflowSubmittedView(workflow_id=workflow.id, tasks=workflow.tasks_total)


@router.get("/workflows", response_model=WorkflowPageView)
async def list_workflows(
    svc: Service,
    status_: Annotated[
        str | None, Query(alias="status", description="a workflow status, in any case")
    ] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> WorkflowPageView:
    """Workflows, newest first."""
    return await workflow_page(svc, status_, limit, offset)


async def workflow_page(
    svc: Service, status_: str | None, limit: int, offset: int
) -> WorkflowPageView:
    """A page of workflows, newest first, of the status named in any case (or of all)."""
    found, total = await svc.workflows(parse_status(WorkflowStatus, status_), limit, offset)
    return WorkflowPageView(
        workflows=[WorkflowView.of(w) for w in found], total=total, limit=limit, offset=offset
    )


@router.get("/workflows/{workflow_id}", response_model=WorkflowView)
async def get_workflow(
    workflow_id: str,
    svc: Service,
    steps: Annotated[
        bool, Query(description="also every step with its tasks (else counts only)")
    ] = False,
    wait: Wait = 0,
    step_offset: Annotated[
        int, Query(ge=0, le=MAX_QUERY_INT, description="with steps: the first step shown")
    ] = 0,
    step_limit: Annotated[
        int | None,
        Query(ge=1, le=MAX_QUERY_INT, description="with steps: how many (default: all)"),
    ] = None,
) -> WorkflowView:
    """Status, counts, progress and checkpoint; with ``?steps=true`` per-step and per-task
    states too (a page of them with ``step_offset``/``step_limit``; ``steps_total`` says
    how many there are); with ``?wait=S`` once it has finished (or after S seconds)."""
    found = await WORKFLOW_WATCH.until_finished(
        svc.bus, workflow_id, lambda: svc.workflow_record(workflow_id), wait
    )
    if found is None:
        raise _not_found(workflow_id)
    if not steps:
        return WorkflowView.of(found)
    full = await svc.workflow(workflow_id)
    if full is None:
        raise _not_found(workflow_id)
    end = None if step_limit is None else step_offset + step_limit
    return WorkflowView.of(*full, page=slice(step_offset, end))


async def workflow_command(svc: Service, workflow_id: str, verb: str) -> WorkflowView:
    action = {
        "cancel": svc.cancel_workflow,
        "retry": svc.retry_workflow,
        "rollback": svc.rollback_workflow,
    }[verb]
    try:
        await action(workflow_id)
    except KeyError:
        raise _not_found(workflow_id) from None
    except WorkflowConflict as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=str(exc)) from None
    found = await svc.workflow(workflow_id)
    assert found is not None
    return WorkflowView.of(*found)


@router.post("/workflows/{workflow_id}/cancel", response_model=WorkflowView)
async def cancel_workflow(workflow_id: str, svc: Service) -> WorkflowView:
    """End running tasks (their process groups) and cancel the rest."""
    return await workflow_command(svc, workflow_id, "cancel")


@router.post("/workflows/{workflow_id}/retry", response_model=WorkflowView)
async def retry_workflow(workflow_id: str, svc: Service) -> WorkflowView:
    """Resume a failed or cancelled workflow from its checkpoint."""
    return await workflow_command(svc, workflow_id, "retry")


@router.post("/workflows/{workflow_id}/rollback", response_model=WorkflowView)
async def rollback_workflow(workflow_id: str, svc: Service) -> WorkflowView:
    """Undo the completed operations of a finished workflow, in reverse order."""
    return await workflow_command(svc, workflow_id, "rollback")
