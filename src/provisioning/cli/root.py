"""The root command of ``provisioning`` for Typer: its own commands, and the groups
(``cli/lazy.py``), each imported when named, with its own dependencies."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from . import coercion
from .exits import EXIT_CODES_HELP
from .lazy import LazyCommands, plain_metavars

app = typer.Typer(
    name="provisioning",
    cls=LazyCommands,
    help=(
        "Create servers, taskservs and clusters, and run durable workflows on the "
        "orchestrator.\n\n"
        "Each group has its own --help with examples, e.g. `provisioning workflow --help`."
        f"\n\n{EXIT_CODES_HELP}"
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


@app.callback()
def root(
    ctx: typer.Context,
    config: Annotated[
        Path | None,
        typer.Option("--config", metavar="FILE", help="An extra configuration file (TOML)."),
    ] = None,
) -> None:
    from .common import State

    ctx.obj = State(config_file=config)


_JsonFlag = Annotated[bool, typer.Option("--json", help="Same as -o json.")]
_OutputOption = Annotated[
    str | None, typer.Option("--output", "-o", metavar="table|json|yaml", help="Output format.")
]


@app.command()
def version(ctx: typer.Context, json_out: _JsonFlag = False, output: _OutputOption = None) -> None:
    """Versions of this CLI, its API, and the orchestrator when it answers."""
    from .about import show_version

    show_version(ctx, json_out=json_out, output=output)


@app.command()
def env(ctx: typer.Context, json_out: _JsonFlag = False, output: _OutputOption = None) -> None:
    """The effective configuration, and where each value came from."""
    from .about import show_env

    show_env(ctx, json_out=json_out, output=output)


@app.command("help")
def help_(ctx: typer.Context) -> None:
    """Show this help."""
    parent = ctx.parent
    assert parent is not None
    typer.echo(parent.get_help())


def run() -> None:
    """Parse the command line with Typer and run the command."""
    coercion.install()
    command = typer.main.get_command(app)
    plain_metavars(command)
    command.main(prog_name="provisioning")
