"""The event stream: Server-Sent Events at ``/events``, WebSocket at ``/ws``."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import (
    APIRouter,
    Depends,
    HTTPException,
    Query,
    Request,
    WebSocket,
    WebSocketDisconnect,
    status,
)
from fastapi.responses import StreamingResponse

from .auth import check_token, presented_token, require_stream_token
from .tasks import Service

router = APIRouter()

KINDS = frozenset({"task", "workflow", "system"})
# The original platform calls workflow events "batch" events.
ALIASES = {"batch": "workflow"}


class UnknownKind(ValueError):
    pass


def _kinds(events: str | None) -> frozenset[str] | None:
    """The event kinds asked for (None: all); an unknown kind is refused, never ignored."""
    if not events:
        return None
    asked = [k.strip().lower() for k in events.split(",") if k.strip()]
    unknown = [k for k in asked if k not in KINDS and k not in ALIASES]
    if unknown:
        known = ", ".join(sorted(KINDS | set(ALIASES)))
        raise UnknownKind(f"events: unknown kind(s) {', '.join(unknown)} (known: {known})")
    return frozenset(ALIASES.get(k, k) for k in asked)


async def _hello(svc: Service, kinds: frozenset[str] | None) -> dict[str, Any] | None:
    """The ``system`` event a new subscriber gets first: which node it is connected to."""
    if kinds is not None and "system" not in kinds:
        return None
    return {
        "id": 0,
        "type": "system",
        "event": "connected",
        "ts": time.time(),
        **(await svc.health()),
    }


@router.get("/events", dependencies=[Depends(require_stream_token)])
async def events(
    request: Request,
    svc: Service,
    events: Annotated[
        str | None, Query(description="comma-separated: task, workflow (alias batch), system")
    ] = None,
    task_id: str | None = None,
) -> StreamingResponse:
    """Task changes as they happen (``text/event-stream``)."""
    try:
        kinds = _kinds(events)
    except UnknownKind as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, detail=str(exc)) from None
    hello = await _hello(svc, kinds)
    feed = svc.bus.subscribe(kinds)

    async def stream() -> AsyncIterator[str]:
        yield ": connected\n\n"
        if hello is not None:
            yield f"id: 0\nevent: system\ndata: {json.dumps(hello)}\n\n"
        async for event in feed:
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
        kinds = _kinds(events)
    except UnknownKind as exc:
        # Accepted first, so the client reads why (a refused handshake says nothing).
        await socket.send_json({"type": "error", "error": str(exc)})
        await socket.close(code=4400, reason=str(exc)[:120])
        return
    feed = svc.bus.subscribe(kinds)
    try:
        hello = await _hello(svc, kinds)
        if hello is not None:
            await socket.send_json(hello)
        async for event in feed:
            if event is not None:
                await socket.send_json(event.as_dict())
    except WebSocketDisconnect:
        return
    finally:
        await feed.aclose()
