"""What server, taskserv and cluster commands share: finding the workspace and
infra, ``--check``, and running a workflow directly or on the orchestrator."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from ..client import ClientError
from ..infra import Infra, InfraError, load_infra
from ..operations import plans
from ..taskservs import CatalogError
from ..workflow import PlanError, build_plan
from ..workflow.validate import check_plan, parse_spec
from . import dispatch
from .common import EXIT_FAILED, EXIT_USAGE, client_failure, fail, out, print_json, state, styled
from .direct import run_workflow_direct
from .workflow import follow

InfraOption = Annotated[
    str | None, typer.Option("--infra", help="The infra (default: workspace.default_infra).")
]
CheckFlag = Annotated[bool, typer.Option("--check", help="Show what would change; change nothing.")]
WaitFlag = Annotated[bool, typer.Option("--wait", help="Follow; exit 0 only if it completed.")]
OrchestratedFlag = Annotated[bool, typer.Option("--orchestrated", help="Run on the orchestrator.")]
DirectFlag = Annotated[bool, typer.Option("--direct", help="Run here, without the orchestrator.")]
JsonFlag = Annotated[bool, typer.Option("--json", help="Machine-readable output only.")]


def workspace_dir(ctx: typer.Context) -> Path:
    found = state(ctx).loaded.workspace_dir
    if found is None:
        fail(
            "not inside a workspace: run `provisioning workspace init NAME` and work in it, "
            "or set PROVISIONING_WORKSPACE",
            EXIT_USAGE,
        )
    return found


def infra_of(ctx: typer.Context, name: str | None) -> tuple[Path, Infra]:
    workspace = workspace_dir(ctx)
    chosen = name or state(ctx).loaded.settings.workspace.default_infra
    try:
        return workspace, load_infra(workspace, chosen)
    except InfraError as exc:
        fail(str(exc), EXIT_USAGE)


def show_changes(workspace: Path, infra: Infra, workflow: dict[str, Any], json_out: bool) -> None:
    found = plans.changes(workspace, infra, workflow)
    if json_out:
        print_json({"workflow": workflow["name"], "changes": found})
        return
    table = Table("server", "taskserv", "action")
    for change in found:
        table.add_row(change["server"], change.get("taskserv", ""), change["action"])
    out.print(styled((workflow["name"], "bold"), " (check: nothing was changed)"))
    out.print(table)


def servers_of(infra: Infra, given: list[str] | None) -> list[str]:
    """The servers named (every server of the infra when none is); each must exist."""
    names = given or [server.hostname for server in infra.servers]
    if not names:
        raise InfraError(f"infra {infra.name} defines no servers")
    for hostname in names:
        infra.server(hostname)
    return names


def plan_and_run(
    ctx: typer.Context,
    operation: str,
    infra_name: str | None,
    build: Callable[[Path, Infra], dict[str, Any]],
    *,
    check: bool,
    wait: bool,
    orchestrated: bool,
    direct: bool,
    json_out: bool,
) -> None:
    """Expand a command into its workflow (``build``), then ``--check`` it (show what
    would change) or run it where the execution mode says."""
    workspace, infra = infra_of(ctx, infra_name)
    try:
        workflow = build(workspace, infra)
    except (CatalogError, InfraError) as exc:
        fail(str(exc), EXIT_USAGE)
    if check:
        show_changes(workspace, infra, workflow, json_out)
        return
    execute(
        ctx,
        operation,
        workflow,
        wait=wait,
        orchestrated=orchestrated,
        direct=direct,
        json_out=json_out,
    )


def execute(
    ctx: typer.Context,
    operation: str,
    workflow: dict[str, Any],
    *,
    wait: bool,
    orchestrated: bool,
    direct: bool,
    json_out: bool,
) -> None:
    """Validate ``workflow`` and run it where the execution mode says."""
    settings = state(ctx).loaded.settings
    try:
        plan = build_plan(parse_spec(workflow))
        check_plan(plan, settings)
    except (PlanError, CatalogError) as exc:
        fail(str(exc), EXIT_USAGE)
    route = dispatch.route(state(ctx), operation, orchestrated=orchestrated, direct=direct)
    if route.client is None:
        ok = run_workflow_direct(plan, settings, echo=not json_out)
        if json_out:
            print_json({"mode": "direct", "workflow": workflow["name"], "completed": ok})
        if not ok:
            raise typer.Exit(EXIT_FAILED)
        return
    try:
        submitted = route.client.submit_workflow(workflow)
        if not json_out:
            out.print(f"Workflow submitted: {submitted['workflow_id']}")
        if not wait:
            if json_out:
                print_json(submitted)
            return
        final = follow(route.client, submitted["workflow_id"], quiet=json_out)
    except ClientError as exc:
        client_failure(exc)
    if json_out:
        print_json(final)
    if final["status"] != "completed":
        raise typer.Exit(EXIT_FAILED)
