"""``provisioning taskserv create|list|delete``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from ..infra import Infra
from ..infra.state import read_state
from ..operations import plans
from ..ssh import EndpointError, SshError
from ..taskservs import CatalogError, available
from ..taskservs.packages import PackageError
from ..taskservs.tool import Job, TaskservError
from .common import Format, output_format
from .operate import (
    InfraOption,
    RunOptions,
    infra_of,
    operation,
    plan_and_run,
    servers_of,
    workspace_dir,
)
from .options import JsonFlag, OutputOption
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

CatalogFlag = Annotated[
    bool, typer.Option("--available", help="The catalog instead of what is installed.")
]
Name = Annotated[str, typer.Argument(metavar="NAME", help="The taskserv.")]


def _on_servers(
    verb: str,
    plan: Callable[[Path, Infra, str, list[str]], dict[str, Any]],
    doc: str,
    *,
    destroys: bool = False,
) -> None:
    """Register ``taskserv VERB NAME [-s SERVER]...``, run as ``plan``."""

    def command(
        ctx: typer.Context, name: Name, servers: Servers = None, *, opts: RunOptions
    ) -> None:
        plan_and_run(
            ctx,
            f"taskserv.{verb}",
            lambda ws, inf: plan(ws, inf, name, servers_of(inf, servers)),
            opts,
            destroys=destroys,
        )

    command.__name__ = command.__qualname__ = verb
    command.__doc__ = doc
    operation(app, verb, destroys=destroys)(command)


_on_servers(
    "create",
    plans.create_taskserv,
    "Install a taskserv, and what it depends on (each once, in order), on servers.",
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
    available_: CatalogFlag = False,
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


def health_table(rows: list[dict[str, Any]]) -> Table:
    table = Table(
        [
            Column("server", wrap=False),
            Column("taskserv", wrap=False),
            Column("version", drop=1, wrap=False),
            Column("healthy", wrap=False),
            Column("reason"),
        ]
    )
    for row in rows:
        table.add_row(
            row["server"],
            row["taskserv"],
            row.get("version", ""),
            ("yes", "green") if row["healthy"] else ("NO", "red"),
            row.get("reason", ""),
        )
    return table


@app.command()
def status(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(help="Only this taskserv.")] = None,
    servers: Servers = None,
    infra: InfraOption = None,
    json_out: JsonFlag = False,
    output: OutputOption = None,
) -> None:
    """The health check of installed taskservs, run on each server over SSH (the
    process answers, the port listens, the version matches). Exit 1 if one fails."""
    fmt = output_format(output, json_out)
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
    if fmt.machine:
        data({"infra": definition.name, "taskservs": rows}, fmt)
    else:
        health_table(rows).print(fmt)
    if not all(row["healthy"] for row in rows):
        raise typer.Exit(1)


_on_servers(
    "delete",
    plans.delete_taskserv,
    "Remove a taskserv from servers (stopping its service); asks for `yes` first.",
    destroys=True,
)
