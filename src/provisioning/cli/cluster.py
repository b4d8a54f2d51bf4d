"""``provisioning cluster create|list|delete``."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from ..operations import plans
from .listing import Listing, listing
from .operate import RunOptions, operation, plan_and_run
from .output import Column, Table

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


@listing(app)
def list_(seen: Listing) -> None:
    """Clusters of the infra, with how many of their servers exist."""
    rows: list[dict[str, Any]] = [
        {
            "name": c.name,
            "servers": c.servers,
            "taskservs": c.taskservs,
            "existing": sum(1 for h in c.servers if h in seen.recorded),
        }
        for c in seen.definition.clusters
    ]
    seen.show("clusters", rows, lambda: clusters_table(rows))


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
