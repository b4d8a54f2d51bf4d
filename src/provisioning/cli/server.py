"""``provisioning server create|list|delete``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from ..infra import Infra, InfraError
from ..infra.state import read_state
from ..operations import plans
from .common import Format, JsonFlag, OutputOption, output_format
from .operate import InfraOption, RunOptions, infra_of, operation, plan_and_run, servers_of
from .output import Column, Table, data, status_part

app = typer.Typer(
    help="""Servers of an infra, created and deleted through workflows: on the
orchestrator by default (`server.create` and `server.delete` prefer it), followed
live when on a terminal; --direct runs them here. `server list` reads the
workspace's recorded state.

\b
Examples:
  provisioning server create --check           # the plan: + create, ~ update, - destroy
  provisioning server create web-1 --wait
  provisioning server list -o wide
  provisioning server delete web-1             # asks for `yes` (or --auto-approve)""",
    no_args_is_help=True,
)

Hostnames = Annotated[
    list[str] | None, typer.Argument(help="Hostnames (default: every server of the infra).")
]


@operation(app, "create")
def create(
    ctx: typer.Context,
    hostnames: Hostnames = None,
    no_taskservs: Annotated[
        bool, typer.Option("--no-taskservs", help="Create the servers only.")
    ] = False,
    *,
    opts: RunOptions,
) -> None:
    """Create servers (in parallel), then install their taskservs in dependency order."""
    plan_and_run(
        ctx,
        "server.create",
        lambda ws, inf: plans.create_servers(
            ws, inf, servers_of(inf, hostnames), with_taskservs=not no_taskservs
        ),
        opts,
    )


def servers_table(rows: list[dict[str, Any]], fmt: Format = Format.TABLE) -> Table:
    table = Table(
        [
            Column("hostname", wrap=False),
            Column("provider", drop=2, wrap=False),
            Column("state", wrap=False),
            Column("address", drop=1, wrap=False),
            Column("plan", drop=3, wrap=False),
            Column("taskservs"),
        ]
    )
    for row in rows:
        table.add_row(
            row["hostname"],
            row["provider"],
            status_part(row["state"]),
            row["address"] or "",
            row["plan"] or "",
            ", ".join(row["taskservs"]),
        )
    return table


@app.command("list")
def list_(
    ctx: typer.Context,
    infra: InfraOption = None,
    json_out: JsonFlag = False,
    output: OutputOption = None,
) -> None:
    """Servers recorded for the infra (answered directly from the workspace's state)."""
    fmt = output_format(output, json_out)
    workspace, definition = infra_of(ctx, infra)
    recorded = read_state(workspace, definition.name)["servers"]
    rows: list[dict[str, Any]] = []
    for server in definition.servers:
        record = recorded.get(server.hostname)
        rows.append(
            {
                "hostname": server.hostname,
                "provider": server.provider,
                "state": (record or {}).get("status", "absent") if record else "absent",
                "address": (record or {}).get("address"),
                "plan": server.plan,
                "taskservs": sorted((record or {}).get("taskservs", {})),
            }
        )
    if fmt.machine:
        data({"infra": definition.name, "servers": rows}, fmt)
        return
    servers_table(rows, fmt).print(fmt)


def recorded_or_defined(workspace: Path, infra: Infra, given: list[str] | None) -> list[str]:
    """Servers to delete: defined in the infra, or only recorded (its definition gone)."""
    names = given or [s.hostname for s in infra.servers]
    known = {s.hostname for s in infra.servers} | set(read_state(workspace, infra.name)["servers"])
    unknown = [name for name in names if name not in known]
    if unknown:
        raise InfraError(
            f"infra {infra.name} has no server {', '.join(map(repr, unknown))} "
            f"(known: {', '.join(sorted(known)) or 'none'})"
        )
    return names


@operation(app, "delete", destroys=True)
def delete(ctx: typer.Context, hostnames: Hostnames = None, *, opts: RunOptions) -> None:
    """Delete servers (stopping what runs on them); with no names, every server of the
    infra. Shows what goes and asks for `yes` first."""
    plan_and_run(
        ctx,
        "server.delete",
        lambda ws, inf: plans.delete_servers(ws, inf, recorded_or_defined(ws, inf, hostnames)),
        opts,
        destroys=True,
    )
