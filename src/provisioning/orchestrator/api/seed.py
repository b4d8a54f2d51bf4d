"""The seed's workflow endpoints: ``POST /workflows/servers/create``,
``/workflows/taskserv/create`` and ``/workflows/cluster/create``.

Body, as the seed sends it: ``{"type": "server_create", "infra": NAME,
"params": {"workspace": PATH, ...}}``
(``type`` optional); each expands the
infra's definitions into a workflow (as the CLI does) and queues it.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, status
from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from ...infra import InfraError, load_infra
from ...operations import plans
from ...taskservs import CatalogError
from ...workflow import PlanError
from .auth import require_token
from .tasks import Service
from .workflow_views import WorkflowSubmittedView
from .workflows import plan_error_response

router = APIRouter(dependencies=[Depends(require_token)])


class SeedParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    workspace: Annotated[str, Field(min_length=1, description="the workspace folder")]
    servers: list[str] | None = None
    taskserv: str | None = None
    cluster: str | None = None


SEED_TYPES = {
    "servers": "server_create",
    "taskserv": "taskserv_create",
    "cluster": "cluster_create",
}


class SeedRequest(BaseModel):
    """The seed's body ``{type, infra, params}`` (``type`` optional; it must name this
    endpoint's operation)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    type: Annotated[
        str | None, Field(description="server_create | taskserv_create | cluster_create")
    ] = None
    infra: Annotated[
        str,
        Field(min_length=1, max_length=63, validation_alias=AliasChoices("infra", "infra_name")),
    ]
    params: SeedParams


def _expand(kind: str, body: SeedRequest) -> dict[str, Any]:
    workspace = Path(body.params.workspace)
    if not workspace.is_absolute() or not (workspace / "config" / "provisioning.toml").is_file():
        raise InfraError(f"params.workspace: {workspace} is not a workspace folder (absolute)")
    infra = load_infra(workspace, body.infra)
    if kind == "servers":
        names = body.params.servers or [s.hostname for s in infra.servers]
        for name in names:
            infra.server(name)
        return plans.create_servers(workspace, infra, names)
    if kind == "taskserv":
        if not body.params.taskserv:
            raise InfraError("params.taskserv: which taskserv to create")
        names = body.params.servers or [s.hostname for s in infra.servers]
        for name in names:
            infra.server(name)
        return plans.create_taskserv(workspace, infra, body.params.taskserv, names)
    if not body.params.cluster:
        raise InfraError("params.cluster: which cluster to create")
    return plans.create_cluster(workspace, infra, body.params.cluster)


async def _submit(kind: str, body: SeedRequest, svc: Service) -> Any:
    wanted = SEED_TYPES[kind]
    if body.type is not None and body.type.lower() != wanted:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_ENTITY,
            detail=f"type: this endpoint runs {wanted}, not {body.type!r}",
        )
    try:
        workflow = await asyncio.to_thread(_expand, kind, body)
        submitted = await svc.submit_workflow(workflow)
    except (InfraError, CatalogError) as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, detail=str(exc)) from None
    except PlanError as exc:
        return plan_error_response(exc)
    return WorkflowSubmittedView(workflow_id=submitted.id, tasks=submitted.tasks_total)


@router.post("/workflows/servers/create", status_code=201, response_model=WorkflowSubmittedView)
async def create_servers(body: SeedRequest, svc: Service) -> Any:
    """Create the infra's servers (``params.servers``: some of them) and their taskservs."""
    return await _submit("servers", body, svc)


@router.post("/workflows/taskserv/create", status_code=201, response_model=WorkflowSubmittedView)
async def create_taskserv(body: SeedRequest, svc: Service) -> Any:
    """Install ``params.taskserv`` (and its dependencies) on the infra's servers."""
    return await _submit("taskserv", body, svc)


@router.post("/workflows/cluster/create", status_code=201, response_model=WorkflowSubmittedView)
async def create_cluster(body: SeedRequest, svc: Service) -> Any:
    """Create ``params.cluster``: servers in parallel, then taskservs in order."""
    return await _submit("cluster", body, svc)
