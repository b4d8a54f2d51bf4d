"""``/metrics``: Prometheus text format; the API token unless ``metrics.public``."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST

from ...tasks import WorkflowStatus
from .. import metrics
from ..models import NodeInfo
from ..service import OrchestratorService
from .auth import require_token
from .tasks import Service

router = APIRouter()


async def _workflow_count(svc: OrchestratorService, status: WorkflowStatus) -> int:
    _, total = await svc.workflows(status, 1, 0)
    return total


async def snapshot(svc: OrchestratorService) -> metrics.StoreSnapshot:
    """Read what the store knows, the reads sharing the store worker's rounds."""
    counts_call = svc.db.run(svc.db.store.counts)
    meta_call = svc.db.run(svc.db.store.meta)
    nodes_call = svc.db.run(svc.db.store.nodes)
    statuses = list(WorkflowStatus)
    gathered: list[Any] = await asyncio.gather(
        counts_call,
        meta_call,
        nodes_call,
        svc.db.run(svc.db.store.pending_by_priority),
        *(_workflow_count(svc, status) for status in statuses),
    )
    counts, meta, nodes, queued = gathered[:4]
    workflow_totals = dict(zip((s.value for s in statuses), gathered[4:], strict=True))
    lease = svc.settings.executor.lease_seconds
    now = time.time()
    node_list: list[NodeInfo] = nodes
    return metrics.StoreSnapshot(
        tasks_by_status=counts,
        queued_by_priority=queued,
        workflows_by_status=workflow_totals,
        nodes_alive=sum(1 for node in node_list if now - node.last_seen <= lease),
        nodes_registered=len(node_list),
        shared_store=svc.db.store.shared,
        running_here=svc.scheduler.running_count,
        max_concurrent=svc.settings.executor.max_concurrent_tasks,
        backend=str(meta.get("backend", "unknown")),
    )


@router.get("/metrics", include_in_schema=True, response_class=Response)
async def prometheus_metrics(request: Request, svc: Service) -> Response:
    """Queue, running tasks, outcomes, durations, latencies, workflows and nodes."""
    if not svc.settings.metrics.public:
        await require_token(request)
    body = metrics.exposition(await snapshot(svc))
    return Response(content=body, media_type=CONTENT_TYPE_LATEST)
