"""``provisioning taskserv create|list|delete``."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from ..infra.state import read_state
from ..operations import plans
from ..ssh import EndpointError, SshError
from ..taskservs import CatalogError, available
from ..taskservs.packages import PackageError
from ..taskservs.tool import Job, TaskservError
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
def status(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(help="Only this taskserv.")] = None,
    servers: Servers = None,
    infra: InfraOption = None,
    json_out: JsonFlag = False,
) -> None:
    """The health check of installed taskservs, run on each server over SSH (the
    process answers, the port listens, the version matches). Exit 1 if one fails."""
    workspace, definition = infra_of(ctx, infra)
    recorded = read_state(workspace, definition.name)["servers"]
    rows: list[dict[str, Any]] = []
    for hostname, record in sorted(recorded.items()):
        if servers and hostname not in servers:
            continue
        for taskserv in sorted(record.get("taskservs", {})):
            if name and taskserv != name:
                continue
            params = {
                "workspace_dir": str(workspace),
                "infra": definition.name,
                "hostname": hostname,
                "taskserv": taskserv,
                # Installed together, a clustered taskserv's members know each other.
                "peers": [h for h, r in recorded.items() if taskserv in r.get("taskservs", {})],
            }
            job = None
            try:
                job = Job(params)
                job.render()
                found = job.status()
                rows.append({"server": hostname, **found})
            except (SshError, EndpointError, CatalogError, TaskservError, PackageError) as exc:
                rows.append(
                    {"server": hostname, "taskserv": taskserv, "healthy": False, "reason": str(exc)}
                )
            finally:
                if job is not None:
                    job.close()
    if json_out:
        print_json({"infra": definition.name, "taskservs": rows})
    else:
        table = Table("server", "taskserv", "version", "healthy", "reason")
        for row in rows:
            table.add_row(
                row["server"],
                row["taskserv"],
                row.get("version", ""),
                "yes" if row["healthy"] else "NO",
                row.get("reason", ""),
            )
        out.print(table)
    if not all(row["healthy"] for row in rows):
        raise typer.Exit(1)


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
