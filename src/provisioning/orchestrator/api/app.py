"""The FastAPI application: routes, limits and error shapes."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ... import API_VERSION, __version__
from ...tasks.limits import MAX_BODY_DEPTH, MAX_PARAMS_DEPTH, encoded_depth
from ..service import OrchestratorService
from ..store import StoreError
from ..store.faults import StoreFull
from . import metrics, original, seed, stream, system, tasks, ui, workflows
from .auth import require_token


class BodyLimit:
    """Read a request's whole body before the app sees it: refuse it with 413 when it
    is over ``limit`` bytes (declared or streamed, chunked or not) and with 422 when it
    is JSON nested deeper than any request needs (decoding it would recurse)."""

    def __init__(self, app: ASGIApp, limit: int, workflow_limit: int) -> None:
        self.app = app
        self.limits = (
            (limit, f"limit {limit} bytes (server.max_body_bytes)"),
            (workflow_limit, f"limit {workflow_limit} bytes (server.max_workflow_bytes)"),
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        # A workflow, written one operation per node, is far larger than any other body.
        limit, hint = self.limits[str(scope.get("path", "")).startswith("/workflows/")]
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _refuse(send, 413, "request body too large", hint)
            await _discard(receive, {"type": "http.request", "more_body": True})
            return
        chunks: list[bytes] = []
        seen = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # The client went away.
            chunk = message.get("body", b"")
            seen += len(chunk)
            if seen > limit:
                await _refuse(send, 413, "request body too large", hint)
                await _discard(receive, message)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        depth = encoded_depth(body)
        if depth > MAX_BODY_DEPTH:
            await _refuse(
                send,
                422,
                f"body nested {depth} levels deep; the limit is {MAX_BODY_DEPTH}",
                f"params may nest {MAX_PARAMS_DEPTH} levels",
            )
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


async def _discard(receive: Receive, message: Message) -> None:
    # Read the rest so the client, still sending, gets to see the answer; the server's
    # body deadline bounds how long this may take.
    while message["type"] == "http.request" and message.get("more_body", False):
        message = await receive()


async def _refuse(send: Send, status: int, error: str, detail: str) -> None:
    body = json.dumps({"error": error, "detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _location(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc if part not in ("body",)) or "body"


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = []
    for error in exc.errors():
        message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        if error.get("type") == "json_invalid":
            message = f"body is not valid JSON ({error.get('ctx', {}).get('error', message)})"
        problems.append(f"{_location(tuple(error.get('loc', ())))}: {message}")
    return JSONResponse(
        status_code=422,
        content={"error": "; ".join(problems), "detail": jsonable_errors(exc)},
    )


def jsonable_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    return [
        {"loc": list(e.get("loc", ())), "msg": str(e.get("msg")), "type": e.get("type")}
        for e in exc.errors()
    ]


async def _store_error(_: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, StoreFull):
        return JSONResponse(
            status_code=507,
            content={
                "error": "store full: no space left for the orchestrator's data; "
                "free some and retry (nothing was changed)",
                "detail": str(exc),
            },
        )
    return JSONResponse(
        status_code=503,
        content={"error": "store unavailable; retry shortly", "detail": str(exc)},
        headers={"Retry-After": "5"},
    )


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    return JSONResponse(
        status_code=exc.status_code,
        content={"error": exc.detail},
        headers=getattr(exc, "headers", None),
    )


def create_app(service: OrchestratorService, token: str, *, manage_service: bool = True) -> FastAPI:
    """The ASGI app of one node. With ``manage_service`` its lifespan starts and stops
    the scheduler."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if manage_service:
            await service.start()
        try:
            yield
        finally:
            if manage_service:
                await service.stop()

    app = FastAPI(
        title="provisioning-orchestrator",
        version=__version__,
        summary=f"Durable task and workflow orchestrator (API {API_VERSION})",
        lifespan=lifespan,
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )

    @app.get("/openapi.json", include_in_schema=False, dependencies=[Depends(require_token)])
    async def openapi() -> dict[str, Any]:
        return app.openapi()

    app.state.service = service
    app.state.token = token
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(StoreError, _store_error)
    app.include_router(system.router)
    app.include_router(tasks.router)
    app.include_router(seed.router)
    app.include_router(workflows.router)
    app.include_router(original.router)
    app.include_router(stream.router)
    app.include_router(metrics.router)
    app.include_router(ui.router)
    server = service.settings.server
    app.add_middleware(
        BodyLimit, limit=server.max_body_bytes, workflow_limit=server.max_workflow_bytes
    )
    return app
