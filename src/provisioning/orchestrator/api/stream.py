"""The event stream: Server-Sent Events at ``/events``, WebSocket at ``/ws``."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import StreamingResponse

from .auth import check_token, presented_token, require_stream_token
from .tasks import Service

router = APIRouter()

KINDS = frozenset({"task", "workflow", "system"})


def _kinds(events: str | None) -> frozenset[str] | None:
    if not events:
        return None
    return frozenset(k.strip() for k in events.split(",") if k.strip()) & KINDS


@router.get("/events", dependencies=[Depends(require_stream_token)])
async def events(
    request: Request,
    svc: Service,
    events: Annotated[
        str | None, Query(description="comma-separated: task,workflow,system")
    ] = None,
    task_id: str | None = None,
) -> StreamingResponse:
    """Task changes as they happen (``text/event-stream``)."""
    kinds = _kinds(events)

    async def stream() -> AsyncIterator[str]:
        yield ": connected\n\n"
        async for event in svc.bus.subscribe(kinds):
            if await request.is_disconnected():
                return
            if event is None:
                yield ": keep-alive\n\n"
                continue
            if task_id and event.data.get("task_id") != task_id:
                continue
            yield f"id: {event.id}\nevent: {event.kind}\ndata: {json.dumps(event.as_dict())}\n\n"

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.websocket("/ws")
async def websocket(socket: WebSocket, svc: Service, events: str | None = None) -> None:
    """The original platform's ``ws://.../ws?token=...&events=task,system``."""
    try:
        check_token(socket.app.state.token, presented_token(socket, in_query=True))
    except Exception:
        await socket.close(code=4401, reason="unauthorized")
        return
    await socket.accept()
    try:
        async for event in svc.bus.subscribe(_kinds(events)):
            if event is not None:
                await socket.send_json(event.as_dict())
    except WebSocketDisconnect:
        return
