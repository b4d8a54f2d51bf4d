"""The options every command group shares, declared once for Typer."""

from __future__ import annotations

from typing import Annotated

import typer

JsonFlag = Annotated[bool, typer.Option("--json", help="Same as -o json.")]
FollowFlag = Annotated[bool, typer.Option("--wait", help="Follow; exit 0 only if it completed.")]
OrchestratedFlag = Annotated[bool, typer.Option("--orchestrated", help="Run on the orchestrator.")]
DirectFlag = Annotated[bool, typer.Option("--direct", help="Run here, without the orchestrator.")]
OutputOption = Annotated[
    str | None,
    typer.Option(
        "--output",
        "-o",
        metavar="table|wide|json|yaml",
        help="table (default: fitted to the terminal), wide (every column), json or yaml.",
    ),
]
