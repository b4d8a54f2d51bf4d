"""``/tasks``: submit, list, inspect, cancel, logs, progress."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from starlette.requests import HTTPConnection

from ...tasks import NewTask, TaskStatus
from ..models import Task
from ..service import InvalidTask, NotRunning, OrchestratorService
from .auth import check_token, presented_token, require_token
from .filters import parse_status
from .original_tasks import OriginalTask, OriginalTaskPage, Shape, original_tasks
from .params import After, Limit, LogLimit, Offset
from .schemas import LogLineView, LogsView, ProgressReport, SubmittedView, TaskPageView, TaskView
from .waiting import Wait, Watch

router = APIRouter()
TASK_WATCH: Watch[Task] = Watch("task", lambda t: t.status.terminal)


async def service(connection: HTTPConnection) -> OrchestratorService:
    svc: OrchestratorService = connection.app.state.service
    return svc


Service = Annotated[OrchestratorService, Depends(service)]


def _not_found(task_id: str) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no task {task_id!r}")


@router.post(
    "/tasks",
    status_code=status.HTTP_201_CREATED,
    dependencies=[Depends(require_token)],
    response_model=SubmittedView,
)
async def submit_task(body: NewTask, svc: Service) -> SubmittedView:
    """Queue one task; it is on disk when this answers."""
    try:
        task = await svc.submit(body)
    except InvalidTask as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, detail=str(exc)) from None
    return SubmittedView(task_id=task.id)


@router.get(
    "/tasks",
    dependencies=[Depends(require_token)],
    response_model=TaskPageView | OriginalTaskPage,
)
async def list_tasks(
    svc: Service,
    status_: Annotated[
        str | None, Query(alias="status", description="a task status, in any case")
    ] = None,
    limit: Limit = 50,
    offset: Offset = 0,
    shape: Annotated[
        Shape | None, Query(description="`original`: the original platform's task shape")
    ] = None,
) -> Any:
    """Tasks, newest first."""
    page = await svc.list_tasks(parse_status(TaskStatus, status_), limit, offset)
    if shape is Shape.ORIGINAL:
        return await original_tasks(svc, page.tasks, page.total, limit, offset)
    return TaskPageView(
        tasks=[TaskView.of(t) for t in page.tasks], total=page.total, limit=limit, offset=offset
    )


@router.get(
    "/tasks/{task_id}",
    dependencies=[Depends(require_token)],
    response_model=TaskView | OriginalTask,
)
async def get_task(task_id: str, svc: Service, shape: Shape | None = None, wait: Wait = 0) -> Any:
    """One task with all its attempts (``?shape=original``: the original's task shape;
    ``?wait=S``: once it has finished, or after S seconds)."""
    task = await TASK_WATCH.until_finished(svc.bus, task_id, lambda: svc.get(task_id), wait)
    if task is None:
        raise _not_found(task_id)
    if shape is Shape.ORIGINAL:
        return (await original_tasks(svc, [task], 1, 1, 0)).tasks[0]
    view = TaskView.of(task, await svc.attempts(task_id))
    view.usage = svc.scheduler.usage(task_id)
    return view


@router.get("/tasks/{task_id}/logs", dependencies=[Depends(require_token)], response_model=LogsView)
async def task_logs(
    task_id: str,
    svc: Service,
    after: After = 0,
    limit: LogLimit = 1000,
) -> LogsView:
    """The task's output lines (every attempt), oldest first."""
    if await svc.get(task_id) is None:
        raise _not_found(task_id)
    lines = await svc.logs(task_id, after, limit)
    return LogsView(
        task_id=task_id,
        lines=[LogLineView.of(line) for line in lines],
        next_after=lines[-1].seq if lines else after,
    )


@router.post(
    "/tasks/{task_id}/cancel", dependencies=[Depends(require_token)], response_model=TaskView
)
async def cancel_task(task_id: str, svc: Service) -> TaskView:
    """Cancel a pending task, or stop a running one (its whole process group)."""
    task = await svc.cancel(task_id)
    if task is None:
        raise _not_found(task_id)
    return TaskView.of(task)


async def require_task_or_api_token(task_id: str, request: Request, svc: Service) -> None:
    """Dependency: the API token, or the token handed to this task's handler."""
    token = presented_token(request)
    if token is None or not svc.is_task_token(task_id, token):
        check_token(request.app.state.token, token)


@router.post(
    "/tasks/{task_id}/progress",
    response_model=TaskView,
    dependencies=[Depends(require_task_or_api_token)],
)
async def report_progress(task_id: str, body: ProgressReport, svc: Service) -> TaskView:
    """Progress from a handler (seed Pattern 3): the API token, or the task's own token."""
    try:
        task = await svc.progress(task_id, body.progress, body.message)
    except NotRunning:
        existing = await svc.get(task_id)
        if existing is None:
            raise _not_found(task_id) from None
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            detail=f"task {task_id} is {existing.status.value}, not running",
        ) from None
    return TaskView.of(task)
