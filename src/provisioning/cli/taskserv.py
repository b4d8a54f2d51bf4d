"""``provisioning taskserv create|list|delete``."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from ..infra.state import read_state
from ..operations import plans
from ..taskservs import available
from .common import out, print_json
from .operate import (
    CheckFlag,
    DirectFlag,
    InfraOption,
    JsonFlag,
    OrchestratedFlag,
    WaitFlag,
    infra_of,
    plan_and_run,
    servers_of,
    workspace_dir,
)

app = typer.Typer(help="Taskservs: services installed on servers.", no_args_is_help=True)

Servers = Annotated[
    list[str] | None,
    typer.Option("--server", "-s", help="A server to install on (repeatable; default: all)."),
]


@app.command()
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The taskserv.")],
    servers: Servers = None,
    infra: InfraOption = None,
    check: CheckFlag = False,
    wait: WaitFlag = False,
    orchestrated: OrchestratedFlag = False,
    direct: DirectFlag = False,
    json_out: JsonFlag = False,
) -> None:
    """Install a taskserv, and what it depends on (each once, in order), on servers."""
    plan_and_run(
        ctx,
        "taskserv.create",
        infra,
        lambda ws, inf: plans.create_taskserv(ws, inf, name, servers_of(inf, servers)),
        check=check,
        wait=wait,
        orchestrated=orchestrated,
        direct=direct,
        json_out=json_out,
    )


@app.command("list")
def list_(
    ctx: typer.Context,
    infra: InfraOption = None,
    available_: Annotated[
        bool, typer.Option("--available", help="The catalog instead of what is installed.")
    ] = False,
    json_out: JsonFlag = False,
) -> None:
    """Installed taskservs per server (or the catalog with --available)."""
    if available_:
        catalog: list[dict[str, Any]] = [
            {
                "name": t.name,
                "version": t.version,
                "depends_on": list(t.depends_on),
                "source": t.source,
                "service": t.service,
                "description": t.description,
            }
            for t in available(workspace_dir(ctx))
        ]
        if json_out:
            print_json({"taskservs": catalog})
            return
        table = Table("name", "version", "depends on", "source", "description")
        for t in catalog:
            table.add_row(
                t["name"], t["version"], ", ".join(t["depends_on"]), t["source"], t["description"]
            )
        out.print(table)
        return
    workspace, definition = infra_of(ctx, infra)
    servers = read_state(workspace, definition.name)["servers"]
    rows = [
        {"server": hostname, "taskserv": name, **info}
        for hostname, record in sorted(servers.items())
        for name, info in sorted(record.get("taskservs", {}).items())
    ]
    if json_out:
        print_json({"infra": definition.name, "taskservs": rows})
        return
    table = Table("server", "taskserv", "version", "url")
    for row in rows:
        table.add_row(row["server"], row["taskserv"], row.get("version", ""), row.get("url", ""))
    out.print(table)


@app.command()
def delete(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The taskserv.")],
    servers: Servers = None,
    infra: InfraOption = None,
    check: CheckFlag = False,
    wait: WaitFlag = False,
    orchestrated: OrchestratedFlag = False,
    direct: DirectFlag = False,
    json_out: JsonFlag = False,
) -> None:
    """Remove a taskserv from servers (stopping its service)."""
    plan_and_run(
        ctx,
        "taskserv.delete",
        infra,
        lambda ws, inf: plans.delete_taskserv(ws, inf, name, servers_of(inf, servers)),
        check=check,
        wait=wait,
        orchestrated=orchestrated,
        direct=direct,
        json_out=json_out,
    )
