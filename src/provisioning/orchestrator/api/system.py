"""``/health`` (no auth) and ``/status``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from .auth import require_token
from .tasks import Service

router = APIRouter()


@router.get("/health")
async def health(svc: Service) -> dict[str, Any]:
    """Liveness; the only endpoint without a token."""
    return await svc.health()


@router.get("/status", dependencies=[Depends(require_token)])
async def node_status(svc: Service) -> dict[str, Any]:
    """This node, its store and the task counts by status."""
    return await svc.status()
