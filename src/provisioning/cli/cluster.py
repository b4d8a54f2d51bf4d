"""``provisioning cluster create|list|delete``."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from ..infra.state import read_state
from ..operations import plans
from .common import JsonFlag, OutputOption, output_format
from .operate import InfraOption, RunOptions, infra_of, operation, plan_and_run
from .output import Column, Table, data

app = typer.Typer(
    help="""A cluster is servers plus taskservs, built as one workflow (servers in
parallel, then taskservs in dependency order): on the orchestrator by default,
followed live when on a terminal; --direct runs it here.

\b
Examples:
  provisioning cluster create web --check
  provisioning cluster create web
  provisioning cluster list
  provisioning cluster delete web              # asks for `yes` (or --auto-approve)""",
    no_args_is_help=True,
)

Name = Annotated[str, typer.Argument(metavar="NAME", help="The cluster, as named in the infra.")]


@operation(app, "create")
def create(ctx: typer.Context, name: Name, *, opts: RunOptions) -> None:
    """Servers in parallel, then taskservs in dependency order (one workflow)."""
    plan_and_run(ctx, "cluster.create", lambda ws, inf: plans.create_cluster(ws, inf, name), opts)


def clusters_table(rows: list[dict[str, Any]]) -> Table:
    table = Table(
        [
            Column("cluster", wrap=False),
            Column("servers"),
            Column("taskservs"),
            Column("existing", wrap=False),
        ]
    )
    for row in rows:
        table.add_row(
            row["name"],
            ", ".join(row["servers"]),
            ", ".join(row["taskservs"]),
            f"{row['existing']}/{len(row['servers'])}",
        )
    return table


@app.command("list")
def list_(
    ctx: typer.Context,
    infra: InfraOption = None,
    json_out: JsonFlag = False,
    output: OutputOption = None,
) -> None:
    """Clusters of the infra, with how many of their servers exist."""
    fmt = output_format(output, json_out)
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
    if fmt.machine:
        data({"infra": definition.name, "clusters": rows}, fmt)
        return
    clusters_table(rows).print(fmt)


@operation(app, "delete", destroys=True)
def delete(ctx: typer.Context, name: Name, *, opts: RunOptions) -> None:
    """Delete the cluster's servers (and everything on them); asks for `yes` first."""
    plan_and_run(
        ctx,
        "cluster.delete",
        lambda ws, inf: plans.delete_cluster(ws, inf, name),
        opts,
        destroys=True,
    )
