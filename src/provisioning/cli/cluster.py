"""``provisioning cluster create|list|delete``."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from ..infra.state import read_state
from ..operations import plans
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
)

app = typer.Typer(help="Clusters: servers plus taskservs, as one workflow.", no_args_is_help=True)

Name = Annotated[str, typer.Argument(help="The cluster, as named in the infra.")]


@app.command()
def create(
    ctx: typer.Context,
    name: Name,
    infra: InfraOption = None,
    check: CheckFlag = False,
    wait: WaitFlag = False,
    orchestrated: OrchestratedFlag = False,
    direct: DirectFlag = False,
    json_out: JsonFlag = False,
) -> None:
    """Servers in parallel, then taskservs in dependency order (one workflow)."""
    plan_and_run(
        ctx,
        "cluster.create",
        infra,
        lambda ws, inf: plans.create_cluster(ws, inf, name),
        check=check,
        wait=wait,
        orchestrated=orchestrated,
        direct=direct,
        json_out=json_out,
    )


@app.command("list")
def list_(ctx: typer.Context, infra: InfraOption = None, json_out: JsonFlag = False) -> None:
    """Clusters of the infra, with how many of their servers exist."""
    workspace, definition = infra_of(ctx, infra)
    servers = read_state(workspace, definition.name)["servers"]
    rows: list[dict[str, Any]] = [
        {
            "name": c.name,
            "servers": c.servers,
            "taskservs": c.taskservs,
            "existing": sum(1 for h in c.servers if h in servers),
        }
        for c in definition.clusters
    ]
    if json_out:
        print_json({"infra": definition.name, "clusters": rows})
        return
    table = Table("cluster", "servers", "taskservs", "existing")
    for row in rows:
        table.add_row(
            row["name"],
            ", ".join(row["servers"]),
            ", ".join(row["taskservs"]),
            f"{row['existing']}/{len(row['servers'])}",
        )
    out.print(table)


@app.command()
def delete(
    ctx: typer.Context,
    name: Name,
    infra: InfraOption = None,
    check: CheckFlag = False,
    wait: WaitFlag = False,
    orchestrated: OrchestratedFlag = False,
    direct: DirectFlag = False,
    json_out: JsonFlag = False,
) -> None:
    """Delete the cluster's servers (and everything on them)."""
    plan_and_run(
        ctx,
        "cluster.delete",
        infra,
        lambda ws, inf: plans.delete_cluster(ws, inf, name),
        check=check,
        wait=wait,
        orchestrated=orchestrated,
        direct=direct,
        json_out=json_out,
    )
