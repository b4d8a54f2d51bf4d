"""``provisioning task``: single tasks on the orchestrator (every runner of ``POST /tasks``)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any

import typer

from ..client import ClientError, OrchestratorClient, TaskView
from .common import (
    Format,
    client_failure,
    fetched,
    output_format,
    resolve_id,
    say,
    shown,
    shown_id,
    state,
    when,
)
from .options import DirectFlag, FollowFlag, JsonFlag, OrchestratedFlag, OutputOption
from .output import Column, Table, data, status_part
from .submitting import submit_task

app = typer.Typer(
    help="""Tasks run on the orchestrator by default (`task.submit` prefers it; --direct
runs one here, through the same task contract). Ids may be shortened to any unique
prefix of 4 or more characters, as tables show them.

\b
Examples:
  provisioning task submit --wait -- ./deploy.sh --fast
  provisioning task submit --nu examples/hello.nu greet --params '{"name": "Ada"}'
  provisioning task list --status failed -o wide
  provisioning task logs 3f2a9c1e -f""",
    no_args_is_help=True,
)

TaskId = Annotated[str, typer.Argument(metavar="ID", help="A task id, or a unique prefix of one.")]


@app.command()
def submit(
    ctx: typer.Context,
    argv: Annotated[
        list[str] | None, typer.Argument(help="Command and arguments (after --).")
    ] = None,
    nu: Annotated[
        tuple[str, str] | None, typer.Option("--nu", help="Nushell MODULE FUNCTION.")
    ] = None,
    python: Annotated[
        tuple[str, str] | None, typer.Option("--python", help="Python MODULE FUNCTION.")
    ] = None,
    name: Annotated[str | None, typer.Option(help="Task name.")] = None,
    params: Annotated[str | None, typer.Option(help="JSON object, or @file.")] = None,
    priority: Annotated[str, typer.Option(help="low, normal, high or critical.")] = "normal",
    timeout: Annotated[
        float | None, typer.Option(help="Seconds before the task is killed.")
    ] = None,
    max_attempts: Annotated[
        int | None, typer.Option(help="Retry up to this many attempts.")
    ] = None,
    wait: FollowFlag = False,
    orchestrated: OrchestratedFlag = False,
    direct: DirectFlag = False,
    json_out: JsonFlag = False,
    output: OutputOption = None,
) -> None:
    """Queue one task: `-- ARGV...`, `--nu MODULE FUNCTION` or `--python MODULE FUNCTION`."""
    # The options by their names, which are submit_task's (and the quick entry's).
    options = {k: v for k, v in locals().items() if k not in ("ctx", "json_out", "output")}
    submit_task(state(ctx), **options, fmt=output_format(output, json_out))


def attempts_table(task: Mapping[str, Any]) -> Table:
    table = Table(
        [
            Column("attempt", wrap=False),
            Column("status", wrap=False),
            Column("exit", wrap=False),
            Column("started", drop=2, wrap=False),
            Column("finished", drop=1, wrap=False),
            Column("error"),
        ]
    )
    for attempt in task.get("attempts") or []:
        table.add_row(
            str(attempt["number"]),
            status_part(attempt["status"]),
            "" if attempt["exit_code"] is None else str(attempt["exit_code"]),
            when(attempt["started_at"]),
            when(attempt["finished_at"]),
            (attempt["error"] or "").splitlines()[0] if attempt["error"] else "",
        )
    return table


def _one_task(
    name: str,
    get: Callable[[OrchestratorClient, str], TaskView],
    human: Callable[[TaskView, Format], None],
    doc: str,
) -> None:
    """Register command ``name``: ``get`` one task by id and show it."""

    def command(
        ctx: typer.Context, task_id: TaskId, json_out: JsonFlag = False, output: OutputOption = None
    ) -> None:
        fmt = output_format(output, json_out)
        shown(fetched(ctx, "task", task_id, get), fmt, human)

    command.__name__ = command.__qualname__ = name
    command.__doc__ = doc
    app.command(name)(command)


def _say_task(task: TaskView, fmt: Format) -> None:
    say((task["name"], "bold"), f"  {task['id']}")
    say("status    ", status_part(task["status"]), f"  progress {task['progress']}%")
    say(f"priority  {task['priority']}   created {when(task['created_at'], fmt)}")
    if task.get("error"):
        say(f"error     {task['error']}")
    if task.get("result") is not None:
        say("result")
        data(task["result"])
    table = attempts_table(task)
    if table.rows:
        table.print(fmt)


_one_task("status", OrchestratorClient.task, _say_task, "One task with its attempts.")


def tasks_table(tasks: Sequence[Mapping[str, Any]], fmt: Format = Format.TABLE) -> Table:
    table = Table(
        [
            Column("id", wrap=False),
            Column("name"),
            Column("status", wrap=False),
            Column("priority", drop=3, wrap=False),
            Column("progress", drop=1, wrap=False),
            Column("attempt", drop=4, wrap=False),
            Column("created", drop=2, wrap=False),
            Column("workflow", wide=True, wrap=False),
        ]
    )
    for task in tasks:
        table.add_row(
            shown_id(task["id"], fmt),
            task["name"],
            status_part(task["status"]),
            task["priority"],
            f"{task['progress']}%",
            str(task["attempt"]),
            when(task["created_at"], fmt),
            task.get("workflow_id") or "",
        )
    return table


@app.command("list")
def list_(
    ctx: typer.Context,
    status_: Annotated[
        str | None, typer.Option("--status", help="Only tasks in this status.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    offset: Annotated[int, typer.Option(min=0)] = 0,
    json_out: JsonFlag = False,
    output: OutputOption = None,
) -> None:
    """Tasks, newest first."""
    fmt = output_format(output, json_out)
    try:
        page = state(ctx).client().tasks(status_.lower() if status_ else None, limit, offset)
    except ClientError as exc:
        client_failure(exc)
    if fmt.machine:
        data(page, fmt)
        return
    tasks_table(page["tasks"], fmt).print(fmt)
    say(f"{len(page['tasks'])} of {page['total']} task(s)")


def _say_cancelled(task: TaskView, fmt: Format) -> None:
    if task["status"] == "running":
        say(
            f"{task['id'][:8]}: ",
            status_part("cancelling"),
            " (its process group is being stopped)",
        )
    else:
        say(f"{task['id'][:8]}: ", status_part(task["status"]))


_one_task(
    "cancel",
    OrchestratorClient.cancel,
    _say_cancelled,
    "Cancel a pending task or stop a running one.",
)


@app.command()
def logs(
    ctx: typer.Context,
    task_id: TaskId,
    follow_: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new lines.")
    ] = False,
    json_out: Annotated[
        bool, typer.Option("--json", help='One JSON object per line: {"line": ...}.')
    ] = False,
) -> None:
    """A task's output lines."""
    import sys

    client = state(ctx).client()
    full = resolve_id(client, "task", task_id)
    after = 0
    try:
        while True:
            page = client.logs(full, after)
            for entry in page["lines"]:
                if json_out:
                    sys.stdout.write(json.dumps(entry) + "\n")
                    sys.stdout.flush()
                elif entry["stream"] == "stderr":
                    say((entry["line"], "red"))
                else:
                    say(entry["line"])
            after = page["next_after"]
            if not follow_:
                return
            if not page["lines"] and client.task(full)["status"] not in ("pending", "running"):
                return
            time.sleep(0.3)  # A client's polling interval.
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    except ClientError as exc:
        client_failure(exc)
