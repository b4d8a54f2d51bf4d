"""What the ``list`` commands of servers and clusters share, in one shape: their
options, the infra they read and the servers its state records, and how rows are shown
(a table, or the machine formats under the infra's name)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer

from ..infra import Infra
from ..infra.state import read_state
from .common import Format, output_format
from .operate import InfraOption, infra_of
from .options import JsonFlag, OutputOption
from .output import Table, data


@dataclass(frozen=True)
class Listing:
    """One infra as a list command sees it."""

    fmt: Format
    workspace: Path
    definition: Infra
    recorded: dict[str, Any]  # the servers of the infra's state, by hostname

    def show(self, key: str, rows: list[dict[str, Any]], table: Callable[[], Table]) -> None:
        if self.fmt.machine:
            data({"infra": self.definition.name, key: rows}, self.fmt)
            return
        table().print(self.fmt)


def listing(app: typer.Typer) -> Callable[[Callable[[Listing], None]], Callable[[Listing], None]]:
    """Register ``fn(listing)`` as the ``list`` command of ``app`` (its docstring is the
    command's help)."""

    def register(fn: Callable[[Listing], None]) -> Callable[[Listing], None]:
        def list_(
            ctx: typer.Context,
            infra: InfraOption = None,
            json_out: JsonFlag = False,
            output: OutputOption = None,
        ) -> None:
            fmt = output_format(output, json_out)
            workspace, definition = infra_of(ctx, infra)
            recorded = read_state(workspace, definition.name)["servers"]
            fn(Listing(fmt, workspace, definition, recorded))

        list_.__doc__ = fn.__doc__
        app.command("list")(list_)
        return fn

    return register
