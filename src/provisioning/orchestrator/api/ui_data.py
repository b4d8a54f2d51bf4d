"""What the dashboard shows beyond the REST API: each workflow's workspace, and per
workspace the servers and taskservs the platform knows.

A workflow's workspace is the ``workspace_dir`` its platform operations carry (the
CLI's plans put it in every operation's parameters); a workspace's servers and
taskservs come from its recorded state (``runtime/state/<infra>.json``), which the
handlers of those workflows wrote on this machine.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...infra.state import read_state
from ..models import Workflow
from ..service import OrchestratorService

# Workflows looked at to find workspaces: the newest ones.
RECENT_WORKFLOWS = 500
REMEMBERED_WORKFLOWS = 100_000
WorkspaceRef = tuple[str, frozenset[str]]
_workspace_of: dict[str, WorkspaceRef | None] = {}


@dataclass
class WorkspaceSeen:
    path: str
    infras: set[str] = field(default_factory=set)
    workflows: int = 0
    last_workflow: str | None = None


def workspace_in_spec(spec: dict[str, Any] | None) -> WorkspaceRef | None:
    """``(workspace_dir, infras)`` of a workflow spec, or ``None`` (a plain workflow)."""
    found: str | None = None
    infras: set[str] = set()
    for op in (spec or {}).get("operations", []):
        params = op.get("params") or {}
        where = params.get("workspace_dir")
        if isinstance(where, str) and where.startswith("/"):
            found = found or where
            infra = op.get("infra") or params.get("infra")
            if isinstance(infra, str):
                infras.add(infra)
    return (found, frozenset(infras)) if found else None


async def workspace_of(svc: OrchestratorService, workflow_id: str) -> WorkspaceRef | None:
    # A workflow's spec never changes: remember what it said.
    if workflow_id not in _workspace_of:
        if len(_workspace_of) > REMEMBERED_WORKFLOWS:
            _workspace_of.clear()
        spec = await svc.db.run(svc.db.store.workflow_spec, workflow_id)
        _workspace_of[workflow_id] = workspace_in_spec(spec)
    return _workspace_of[workflow_id]


def workspace_name(path: str) -> str:
    return Path(path).name or path


async def recent_workflows(svc: OrchestratorService) -> list[Workflow]:
    found, _ = await svc.workflows(None, RECENT_WORKFLOWS, 0)
    return found


async def workspaces(svc: OrchestratorService) -> list[WorkspaceSeen]:
    seen: dict[str, WorkspaceSeen] = {}
    for workflow in await recent_workflows(svc):
        where = await workspace_of(svc, workflow.id)
        if where is None:
            continue
        entry = seen.setdefault(where[0], WorkspaceSeen(path=where[0]))
        entry.infras |= where[1]
        entry.workflows += 1
        entry.last_workflow = entry.last_workflow or workflow.id
    return sorted(seen.values(), key=lambda w: workspace_name(w.path))


def _taskservs(record: dict[str, Any]) -> list[dict[str, Any]]:
    installed = record.get("taskservs") or {}
    if not isinstance(installed, dict):
        return []
    rows = []
    for name, info in sorted(installed.items()):
        details = info if isinstance(info, dict) else {}
        rows.append({"name": str(name), "version": details.get("version")})
    return rows


def servers_of(path: str, infra: str) -> tuple[list[dict[str, Any]], str | None]:
    """The recorded servers of one infra, and why they could not be read, if so."""
    try:
        state = read_state(Path(path), infra)
    except (OSError, ValueError) as exc:
        return [], f"state of {infra} not readable: {exc.__class__.__name__}"
    servers = []
    for hostname, record in sorted(state.get("servers", {}).items()):
        if not isinstance(record, dict):
            continue
        servers.append(
            {
                "hostname": str(hostname),
                "provider": record.get("provider"),
                "status": record.get("status"),
                "address": record.get("address"),
                "plan": record.get("plan"),
                "taskservs": _taskservs(record),
            }
        )
    return servers, None


def workspace_view(entry: WorkspaceSeen) -> dict[str, Any]:
    infras = []
    for infra in sorted(entry.infras):
        servers, problem = servers_of(entry.path, infra)
        infras.append({"name": infra, "servers": servers, "problem": problem})
    return {
        "name": workspace_name(entry.path),
        "path": entry.path,
        "workflows": entry.workflows,
        "last_workflow": entry.last_workflow,
        "infras": infras,
    }
