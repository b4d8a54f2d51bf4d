"""``provisioning``: the command line of the Provisioning platform."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from .. import API_VERSION, __version__, compat
from ..client import ClientError, OrchestratorClient
from . import (
    cluster,
    migrate,
    orchestrator,
    provider,
    server,
    task,
    taskserv,
    workflow,
    workspace,
)
from .common import State, out, print_json, state, styled

app = typer.Typer(
    name="provisioning",
    help=(
        "Create servers, taskservs and clusters, and run durable workflows on the "
        "orchestrator.\n\nExit codes: 0 success; 1 the work failed or was refused; "
        "2 bad usage or configuration; 3 the orchestrator cannot be reached."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(orchestrator.app, name="orchestrator")
app.add_typer(server.app, name="server")
app.add_typer(taskserv.app, name="taskserv")
app.add_typer(cluster.app, name="cluster")
app.add_typer(workspace.app, name="workspace")
app.add_typer(task.app, name="task")
app.add_typer(workflow.app, name="workflow")
app.add_typer(workflow.batch, name="batch")
app.add_typer(migrate.app, name="migrate")
app.add_typer(provider.app, name="provider")


@app.callback()
def root(
    ctx: typer.Context,
    config: Annotated[
        Path | None, typer.Option("--config", help="An extra configuration file (TOML).")
    ] = None,
) -> None:
    ctx.obj = State(config_file=config)


@app.command()
def version(
    ctx: typer.Context,
    json_out: Annotated[bool, typer.Option("--json", help="Machine-readable output only.")] = False,
) -> None:
    """Versions of this CLI, its API, and the orchestrator when it answers."""
    report: dict[str, object] = {"version": __version__, "api_version": API_VERSION}
    settings = state(ctx).loaded.settings
    try:
        health = OrchestratorClient(settings.orchestrator.endpoint, None, 5).health()
        try:
            compat.check(health)
            problem = None
        except compat.Incompatible as exc:
            problem = str(exc)
        report["orchestrator"] = {
            "version": health.get("version"),
            "api_version": health.get("api_version"),
            "compatible": problem is None,
            "problem": problem,
        }
    except ClientError:
        report["orchestrator"] = None
    if json_out:
        print_json(report)
        return
    out.print(f"provisioning {__version__} (API {API_VERSION})")
    orch = report["orchestrator"]
    if isinstance(orch, dict):
        verdict = (
            styled("compatible")
            if orch["compatible"]
            else styled(("incompatible", "red"), f": {orch['problem']}")
        )
        out.print(styled(f"orchestrator {orch['version']} (API {orch['api_version']}): ", verdict))
    else:
        out.print(f"orchestrator: not reachable at {settings.orchestrator.endpoint}")


@app.command()
def env(
    ctx: typer.Context,
    json_out: Annotated[bool, typer.Option("--json", help="Machine-readable output only.")] = False,
) -> None:
    """The effective configuration, and where each value came from."""
    loaded = state(ctx).loaded
    values = loaded.settings.model_dump(mode="json")
    rows = [
        (
            f"{section}.{key}",
            "(hidden)" if key.endswith("password") and value else value,
            loaded.sources.get(f"{section}.{key}", "default"),
        )
        for section, body in values.items()
        for key, value in body.items()
    ]
    if json_out:
        print_json({key: {"value": value, "source": source} for key, value, source in rows})
        return
    table = Table("key", "value", "source")
    for key, value, source in rows:
        table.add_row(key, repr(value) if isinstance(value, str) else str(value), source)
    out.print(table)


@app.command("help")
def help_(ctx: typer.Context) -> None:
    """Show this help."""
    parent = ctx.parent
    assert parent is not None
    out.print(parent.get_help(), markup=False)


def main() -> None:
    app()
