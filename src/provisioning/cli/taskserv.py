"""``provisioning taskserv create|list|delete``."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from ..infra.state import read_state
from ..operations import plans
from ..taskservs import available
from .common import Format, JsonFlag, OutputOption, output_format
from .operate import (
    InfraOption,
    RunOptions,
    infra_of,
    operation,
    plan_and_run,
    servers_of,
    workspace_dir,
)
from .output import Column, Table, data

app = typer.Typer(
    help="""Taskservs are installed with what they depend on, each once, in order; on
the orchestrator by default, followed live when on a terminal; --direct runs here.

\b
Examples:
  provisioning taskserv list --available
  provisioning taskserv create kubernetes -s node-1 --check
  provisioning taskserv create kubernetes -s node-1
  provisioning taskserv delete webserver -s web-1 --auto-approve""",
    no_args_is_help=True,
)

Servers = Annotated[
    list[str] | None,
    typer.Option("--server", "-s", help="A server to install on (repeatable; default: all)."),
]


Name = Annotated[str, typer.Argument(metavar="NAME", help="The taskserv.")]


@operation(app, "create")
def create(ctx: typer.Context, name: Name, servers: Servers = None, *, opts: RunOptions) -> None:
    """Install a taskserv, and what it depends on (each once, in order), on servers."""
    plan_and_run(
        ctx,
        "taskserv.create",
        lambda ws, inf: plans.create_taskserv(ws, inf, name, servers_of(inf, servers)),
        opts,
    )


def catalog_table(catalog: list[dict[str, Any]]) -> Table:
    table = Table(
        [
            Column("name", wrap=False),
            Column("version", wrap=False),
            Column("depends on", drop=2),
            Column("source", drop=1, wrap=False),
            Column("description"),
        ]
    )
    for t in catalog:
        table.add_row(
            t["name"], t["version"], ", ".join(t["depends_on"]), t["source"], t["description"]
        )
    return table


def installed_table(rows: list[dict[str, Any]], fmt: Format = Format.TABLE) -> Table:
    table = Table(
        [
            Column("server", wrap=False),
            Column("taskserv", wrap=False),
            Column("version", wrap=False),
            Column("url", drop=1, wrap=False),
        ]
    )
    for row in rows:
        table.add_row(row["server"], row["taskserv"], row.get("version", ""), row.get("url", ""))
    return table


@app.command("list")
def list_(
    ctx: typer.Context,
    infra: InfraOption = None,
    available_: Annotated[
        bool, typer.Option("--available", help="The catalog instead of what is installed.")
    ] = False,
    json_out: JsonFlag = False,
    output: OutputOption = None,
) -> None:
    """Installed taskservs per server (or the catalog with --available)."""
    fmt = output_format(output, json_out)
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
        if fmt.machine:
            data({"taskservs": catalog}, fmt)
            return
        catalog_table(catalog).print(fmt)
        return
    workspace, definition = infra_of(ctx, infra)
    servers = read_state(workspace, definition.name)["servers"]
    rows = [
        {"server": hostname, "taskserv": name, **info}
        for hostname, record in sorted(servers.items())
        for name, info in sorted(record.get("taskservs", {}).items())
    ]
    if fmt.machine:
        data({"infra": definition.name, "taskservs": rows}, fmt)
        return
    installed_table(rows, fmt).print(fmt)


@operation(app, "delete", destroys=True)
def delete(ctx: typer.Context, name: Name, servers: Servers = None, *, opts: RunOptions) -> None:
    """Remove a taskserv from servers (stopping its service); asks for `yes` first."""
    plan_and_run(
        ctx,
        "taskserv.delete",
        lambda ws, inf: plans.delete_taskserv(ws, inf, name, servers_of(inf, servers)),
        opts,
        destroys=True,
    )
