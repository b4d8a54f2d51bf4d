"""Command groups loaded on first use, so ``--help``, ``version``, ``env`` and
``task list`` import only what they run (the daemon, the clouds' SDKs and Nickel
stay out of them)."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

import typer
import typer.main

# Typer vendors its own Click; its commands are instances of these classes, not of
# the separately installed ``click`` package's.
from typer import _click as click
from typer.core import TyperArgument, TyperGroup, TyperOption


@dataclass(frozen=True)
class LazyGroup:
    """A command group living in ``module`` (its Typer object is ``attribute``)."""

    module: str
    summary: str
    attribute: str = "app"


# One place for the groups' one-line summaries: the root help lists them without
# importing a single group.
GROUPS: dict[str, LazyGroup] = {
    "orchestrator": LazyGroup(
        "provisioning.cli.orchestrator", "Start, stop and inspect the orchestrator daemon."
    ),
    "server": LazyGroup("provisioning.cli.server", "Servers of an infra."),
    "taskserv": LazyGroup("provisioning.cli.taskserv", "Taskservs: services installed on servers."),
    "cluster": LazyGroup("provisioning.cli.cluster", "Clusters: servers plus taskservs."),
    "workspace": LazyGroup("provisioning.cli.workspace", "Create and inspect workspaces."),
    "task": LazyGroup("provisioning.cli.task", "Submit and inspect single tasks."),
    "workflow": LazyGroup("provisioning.cli.workflow", "Submit and follow batch workflows."),
    "batch": LazyGroup(
        "provisioning.cli.workflow",
        "The seed's batch commands, on the workflow engine.",
        attribute="batch",
    ),
    "migrate": LazyGroup("provisioning.cli.migrate", "Move from the original platform's inputs."),
    "provider": LazyGroup(
        "provisioning.cli.provider", "Providers and their plans, zones and prices."
    ),
}


def plain_metavars(command: click.Command) -> None:
    """Name what an option takes (``--params PARAMS``), never its Python type
    (``<str>``, ``<list[str]>``), and keep help plain (no Rich) in every subcommand."""
    if hasattr(command, "rich_markup_mode"):
        command.rich_markup_mode = None
    for param in command.params:
        flag = isinstance(param, TyperOption) and param.is_flag
        if param.metavar is None and not flag and param.name:
            param.metavar = param.name.upper().rstrip("_")
        if isinstance(param, TyperArgument):
            # An argument's help shows its name already; Typer would add its Python type.
            setattr(param, "display_type_rich", _no_type)  # noqa: B010
    if isinstance(command, TyperGroup):
        for sub in command.commands.values():
            plain_metavars(sub)


def _no_type(ctx: object) -> None:
    return None


class LazyCommands(TyperGroup):
    """The root group: its own commands, plus :data:`GROUPS` imported when named."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._loaded: dict[str, click.Command] = {}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [*super().list_commands(ctx), *GROUPS]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        own = super().get_command(ctx, cmd_name)
        if own is not None or cmd_name not in GROUPS:
            return own
        if cmd_name not in self._loaded:
            group = GROUPS[cmd_name]
            module = importlib.import_module(group.module)
            # A group even when it holds one command (as add_typer would keep it).
            command = typer.main.get_group(getattr(module, group.attribute))
            command.name = cmd_name
            command.help = (
                group.summary + ("\n\n" + command.help if command.help else "")
            ).rstrip()
            plain_metavars(command)
            self._loaded[cmd_name] = command
        return self._loaded[cmd_name]

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            if name in GROUPS and name not in self._loaded:
                rows.append((name, GROUPS[name].summary))
                continue
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(formatter.width - 20)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)
