"""``provisioning migrate kcl PATH [--write]``: the original platform's KCL files to
Nickel, each conversion proven equal; a dry run (the plan and diffs) unless --write."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..kclmigrate import Action, migrate
from .common import EXIT_FAILED, EXIT_USAGE, fail, out, print_json, styled

app = typer.Typer(no_args_is_help=True)

VERB = {
    Action.CREATE: "create",
    Action.UPDATE: "update",
    Action.UNCHANGED: "unchanged",
    Action.KEEP: "keep",
    Action.FAILED: "FAILED",
}


@app.command("kcl")
def kcl(
    path: Annotated[Path, typer.Argument(help="A .k file or a whole workspace folder.")],
    write: Annotated[
        bool, typer.Option("--write", help="Write the .ncl files (default: show the plan).")
    ] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Machine-readable output only.")] = False,
) -> None:
    """Convert KCL (.k) to Nickel (.ncl) beside each file, proving each conversion."""
    if not path.exists():
        fail(f"{path}: no such file or folder", EXIT_USAGE)
    plans = migrate(path, write=write)
    if not plans:
        fail(f"{path}: no .k files found", EXIT_USAGE)
    failed = [p for p in plans if p.action is Action.FAILED]
    if json_out:
        print_json({"write": write, "files": [p.as_dict() for p in plans]})
    else:
        for plan in plans:
            verdict = VERB[plan.action]
            detail = plan.reason or (
                f"{plan.kind}: the Nickel evaluates to the same data"
                + (" under the platform's contracts" if plan.kind != "data" else "")
            )
            label = styled((verdict, "red" if plan.action is Action.FAILED else "bold"))
            out.print(styled(label, f" {plan.target}  ({detail})"))
            for item in plan.unmapped:
                out.print(f"    not mapped, kept as a comment: {item}")
            if not write and plan.diff:
                out.print(plan.diff.rstrip("\n"))
        changes = sum(p.action in (Action.CREATE, Action.UPDATE) for p in plans)
        if write:
            out.print(f"{changes} file(s) written, {len(failed)} failed")
        else:
            out.print(
                f"dry run: {changes} file(s) to write, {len(failed)} failed; "
                "run again with --write to write them"
            )
    if failed:
        raise typer.Exit(EXIT_FAILED)
