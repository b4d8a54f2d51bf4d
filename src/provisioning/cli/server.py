"""``provisioning server create|list|delete``."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Annotated, Any

import typer

from ..infra import Infra, InfraError
from ..infra.state import read_state
from ..operations import plans
from ..providers.lab import hosts
from ..ssh import EndpointError, SshError
from ..ssh.servers import connect, endpoint_of
from .common import EXIT_USAGE, Format, fail
from .listing import Listing, listing
from .operate import InfraOption, RunOptions, infra_of, operation, plan_and_run, servers_of
from .output import Column, Table, status_part

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

NoTaskservs = Annotated[bool, typer.Option("--no-taskservs", help="Create the servers only.")]


@operation(app, "create")
def create(
    ctx: typer.Context,
    hostnames: Hostnames = None,
    no_taskservs: NoTaskservs = False,
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


@listing(app)
def list_(seen: Listing) -> None:
    """Servers recorded for the infra (answered directly from the workspace's state)."""
    workspace, definition, recorded = seen.workspace, seen.definition, seen.recorded
    rows: list[dict[str, Any]] = []
    for server in definition.servers:
        record = recorded.get(server.hostname)
        endpoint = None
        if record:
            with contextlib.suppress(EndpointError):
                endpoint = endpoint_of(workspace, definition.name, server.hostname, record)
        rows.append(
            {
                "hostname": server.hostname,
                "provider": server.provider,
                "state": live_state(workspace, definition.name, record) if record else "absent",
                "address": (record or {}).get("address"),
                "ssh": None if endpoint is None else endpoint.as_dict(),
                "plan": server.plan,
                "taskservs": sorted((record or {}).get("taskservs", {})),
            }
        )
    seen.show("servers", rows, lambda: servers_table(rows, seen.fmt))


def live_state(workspace: Path, infra: str, record: dict[str, Any]) -> str:
    """A lab host's state is read from the kernel (its PID 1, its sshd); a cloud
    server's is what its provider said last."""
    if record.get("provider") == "local" and record.get("provider_id"):
        return hosts.state(Path(str(record["provider_id"]))).value
    return str(record.get("status", "unknown"))


@app.command(
    "ssh",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
def ssh_(
    ctx: typer.Context,
    hostname: Annotated[str, typer.Argument(help="The server.")],
    command: Annotated[
        list[str] | None, typer.Argument(help="A command to run there (after --).")
    ] = None,
    infra: InfraOption = None,
) -> None:
    """An interactive shell on a server, or one command (after --) whose exit code
    this returns."""
    workspace, definition = infra_of(ctx, infra)
    try:
        definition.server(hostname)
        client = connect(workspace, definition.name, hostname)
    except (InfraError, EndpointError) as exc:
        fail(str(exc), EXIT_USAGE)
    argv = [*(command or []), *ctx.args]
    try:
        code = client.interactive(argv)
    except SshError as exc:
        fail(str(exc))
    if code == 255:
        # ssh's own failure (the command's stderr went to the terminal): say which.
        try:
            client.run(["true"])
        except SshError as exc:
            fail(str(exc))
    raise typer.Exit(code)


def recorded_or_defined(workspace: Path, infra: Infra, given: list[str] | None) -> list[str]:
    """Servers to delete: defined in the infra, or only recorded (its definition gone,
    or made from a batch's inline ``server_configs``); with no names, all of them."""
    defined = [s.hostname for s in infra.servers]
    recorded = [
        name for name in read_state(workspace, infra.name)["servers"] if name not in defined
    ]
    known = {*defined, *recorded}
    names = given or [*defined, *recorded]
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
