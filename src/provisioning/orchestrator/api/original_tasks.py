"""The original platform's task shape (``?shape=original``): ``id, name, command, args,
dependencies, status, created_at, started_at, completed_at, output, error``."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from ..models import Task
from .schemas import iso

if TYPE_CHECKING:
    from ..service import OrchestratorService


class Shape(StrEnum):
    ORIGINAL = "original"


class OriginalTask(BaseModel):
    id: str
    name: str
    command: str
    args: list[str]
    dependencies: list[str]
    status: str  # the original's spelling: Pending, Running, Completed, Failed, Cancelled
    created_at: str | None
    started_at: str | None
    completed_at: str | None
    output: str | None
    error: str | None


class OriginalTaskPage(BaseModel):
    tasks: list[OriginalTask]
    total: int
    limit: int
    offset: int


def _command(run: dict[str, Any]) -> tuple[str, list[str]]:
    if "command" in run:
        argv = [str(a) for a in run["command"]]
        return argv[0], argv[1:]
    for runner in ("nushell", "python"):
        if runner in run:
            return runner, [str(run[runner].get("module")), str(run[runner].get("function"))]
    return "", []


def _status(task: Task) -> str:
    # The original knows Pending/Running/Completed/Failed/Cancelled; the rest say more.
    return "".join(part.capitalize() for part in task.status.value.split("_"))


async def original_tasks(
    svc: OrchestratorService, tasks: list[Task], total: int, limit: int, offset: int
) -> OriginalTaskPage:
    """Tasks in the original shape; a workflow task's dependencies are the tasks of the
    operations its own operation depends on."""
    needed: dict[str, dict[str, list[str]]] = {}
    for workflow_id in {t.workflow_id for t in tasks if t.workflow_id}:
        found = await svc.workflow(workflow_id)
        if found is None:
            continue
        _, steps, members = found
        by_step: dict[str | None, list[str]] = {}
        for member in members:
            by_step.setdefault(member.step_id, []).append(member.id)
        needed[workflow_id] = {
            s.step_id: [t for dep in s.depends_on for t in by_step.get(dep, [])] for s in steps
        }
    page = []
    for task in tasks:
        command, args = _command(task.run)
        deps = needed.get(task.workflow_id or "", {}).get(task.step_id or "", [])
        output = None if task.result is None else json.dumps(task.result)
        page.append(
            OriginalTask(
                id=task.id,
                name=task.name,
                command=command,
                args=args,
                dependencies=deps,
                status=_status(task),
                created_at=iso(task.created_at),
                started_at=iso(task.started_at),
                completed_at=iso(task.completed_at),
                output=output,
                error=task.error,
            )
        )
    return OriginalTaskPage(tasks=page, total=total, limit=limit, offset=offset)
