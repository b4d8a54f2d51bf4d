"""``provisioning workflow``: batch workflows on the orchestrator (``batch`` is the
seed's name for the same commands)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from ..client import ClientError, OrchestratorClient, WorkflowView
from .common import (
    EXIT_FAILED,
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
from .labels import task_label
from .options import FollowFlag, JsonFlag, OutputOption
from .output import Column, Table, data, status_part
from .submitting import (
    WORKFLOW_DONE,
    detached,
    finished_exit,
    recap,
    recap_table,
    submit_workflow,
)
from .submitting import follow_workflow as follow

__all__ = ["follow", "recap", "recap_table"]

HELP = """Workflows always run on the orchestrator (the file is validated here first:
--check shows the plan and queues nothing). Ids may be shortened to any unique
prefix of 4 or more characters, as tables show them.

\b
Examples:
  provisioning workflow submit server-cluster.ncl --check
  provisioning workflow submit server-cluster.ncl --wait
  provisioning workflow list --status failed
  provisioning workflow status 3f2a9c1e
  provisioning workflow logs 3f2a9c1e
  provisioning workflow retry 3f2a9c1e --wait"""

app = typer.Typer(help=HELP, no_args_is_help=True)
WorkflowId = Annotated[
    str, typer.Argument(metavar="ID", help="A workflow id, or a unique prefix of one.")
]


class PriorityChoice(StrEnum):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    CRITICAL = "critical"


PlanOnlyFlag = Annotated[bool, typer.Option("--check", help="Validate and show the plan only.")]


def submit(
    ctx: typer.Context,
    file: Annotated[
        Path,
        typer.Argument(help="Workflow file: .ncl, .json, .yaml, .toml (or the deprecated KCL .k)."),
    ],
    wait: FollowFlag = False,
    priority: Annotated[
        PriorityChoice | None, typer.Option(help="Override the workflow's priority.")
    ] = None,
    check: PlanOnlyFlag = False,
    json_out: JsonFlag = False,
    output: OutputOption = None,
) -> None:
    """Validate a workflow file and queue it (with --check: print the plan, queue nothing)."""
    group = ctx.parent.info_name if ctx.parent is not None else None
    submit_workflow(
        state(ctx),
        group or "workflow",
        file,
        wait=wait,
        priority=priority.value if priority else None,
        check=check,
        fmt=output_format(output, json_out),
    )


def progress_of(workflow: Mapping[str, Any]) -> str:
    """Completed work, in percent: a cancelled or failed workflow never shows 100 %."""
    tasks = workflow["tasks"]
    return f"{100 * tasks['completed'] // max(tasks['total'], 1)}%"


def steps_table(workflow: Mapping[str, Any], fmt: Format = Format.TABLE) -> Table:
    table = Table(
        [
            Column("step", wrap=False),
            Column("layer", drop=5, wrap=False),
            Column("status", wrap=False),
            Column("task"),
            Column("task status", wrap=False),
            Column("attempt", drop=4, wrap=False),
            Column("progress", drop=3, wrap=False),
            Column("error", drop=1),
            Column("task id", wide=True, wrap=False),
        ]
    )
    for step in workflow["steps"]:
        for task in step["tasks"] or [None]:
            table.add_row(
                step["id"],
                str(step["layer"]),
                status_part(step["status"]),
                task_label(task, step["id"]) if task else "",
                status_part(task["status"]) if task else "",
                str(task["attempt"]) if task else "",
                f"{task['progress']}%" if task else "",
                (task.get("error") or "").splitlines()[0] if task and task.get("error") else "",
                task["id"] if task else "",
            )
    return table


def status(
    ctx: typer.Context,
    workflow_id: WorkflowId,
    json_out: JsonFlag = False,
    output: OutputOption = None,
) -> None:
    """A workflow: status, checkpoint, every step and task."""
    fmt = output_format(output, json_out)
    shown(fetched(ctx, "workflow", workflow_id, OrchestratorClient.workflow), fmt, _say_workflow)


def _say_workflow(workflow: WorkflowView, fmt: Format) -> None:
    tasks = workflow["tasks"]
    say((workflow["name"], "bold"), f" {workflow['id']}")
    say(
        "status ",
        status_part(workflow["status"]),
        f"  phase {workflow['phase']}  progress {progress_of(workflow)}  tasks "
        f"{tasks['completed']}/{tasks['total']} completed, {tasks['failed']} failed",
    )
    if workflow.get("error"):
        say(f"error  {workflow['error']}")
    checkpoint = workflow["checkpoint"]
    say(
        f"checkpoint: {', '.join(checkpoint['completed_steps'] or []) or '(none)'}"
        f" at {when(checkpoint['updated_at'], fmt) or '-'}"
    )
    steps_table(workflow, fmt).print(fmt)


def workflows_table(workflows: Sequence[Mapping[str, Any]], fmt: Format = Format.TABLE) -> Table:
    table = Table(
        [
            Column("id", wrap=False),
            Column("name"),
            Column("status", wrap=False),
            Column("progress", drop=2, wrap=False),
            Column("tasks", wrap=False),
            Column("created", drop=1, wrap=False),
        ]
    )
    for wf in workflows:
        table.add_row(
            shown_id(wf["id"], fmt),
            wf["name"],
            status_part(wf["status"]),
            progress_of(wf),
            f"{wf['tasks']['completed']}/{wf['tasks']['total']}",
            when(wf["created_at"], fmt),
        )
    return table


def list_(
    ctx: typer.Context,
    status_: Annotated[str | None, typer.Option("--status", help="Only this status.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    json_out: JsonFlag = False,
    output: OutputOption = None,
) -> None:
    """Workflows, newest first."""
    fmt = output_format(output, json_out)
    try:
        page = state(ctx).client().workflows(status_.lower() if status_ else None, limit)
    except ClientError as exc:
        client_failure(exc)
    if fmt.machine:
        data(page, fmt)
        return
    workflows_table(page["workflows"], fmt).print(fmt)
    say(f"{len(page['workflows'])} of {page['total']} workflow(s)")


def logs(
    ctx: typer.Context,
    workflow_id: WorkflowId,
    json_out: Annotated[
        bool, typer.Option("--json", help='One JSON object per line, with "task" and "step".')
    ] = False,
) -> None:
    """The output of every task of a workflow, in step order, each line led by its task."""
    import json
    import sys

    client = state(ctx).client()
    try:
        workflow = client.workflow(resolve_id(client, "workflow", workflow_id))
        for step in workflow["steps"] or []:
            for task in step["tasks"]:
                label = task_label(task, step["id"])
                after = 0
                while True:
                    page = client.logs(task["id"], after)
                    for entry in page["lines"]:
                        if json_out:
                            record = {"step": step["id"], "task": label, **entry}
                            sys.stdout.write(json.dumps(record) + "\n")
                        else:
                            style = "red" if entry["stream"] == "stderr" else ""
                            say((f"{label} | ", "dim"), (entry["line"], style))
                    if not page["lines"] or page["next_after"] == after:
                        break
                    after = page["next_after"]
    except ClientError as exc:
        client_failure(exc)


@dataclass(frozen=True)
class _Verb:
    """A command on one workflow: what it shows while under way, and the status that
    ``--wait`` counts as success."""

    name: str
    in_progress: str
    wanted: str
    doc: str


def _command(
    ctx: typer.Context, given: str, verb: _Verb, wait: bool, json_out: bool, output: str | None
) -> None:
    fmt = output_format(output, json_out)
    json_out = fmt.machine
    client = state(ctx).client()
    try:
        workflow_id = resolve_id(client, "workflow", given)
        workflow = client.workflow_command(workflow_id, verb.name)
        if not json_out and workflow["status"] not in WORKFLOW_DONE:
            say(f"{workflow_id[:8]}: ", status_part(verb.in_progress))
        if wait and workflow["status"] not in WORKFLOW_DONE:
            workflow = follow(client, workflow_id, quiet=True)
    except ClientError as exc:
        client_failure(exc)
    if json_out:
        data(workflow, fmt)
    elif workflow["status"] in WORKFLOW_DONE:
        say(f"{workflow_id[:8]}: ", status_part(workflow["status"]))
    else:
        say(f"follow it: provisioning workflow monitor {workflow_id[:8]}")
    if wait and workflow["status"] != verb.wanted:
        raise typer.Exit(EXIT_FAILED)


def _verb_command(verb: _Verb) -> Callable[..., None]:
    def command(
        ctx: typer.Context,
        workflow_id: WorkflowId,
        wait: Annotated[bool, typer.Option("--wait", help="Wait until it ends.")] = False,
        json_out: JsonFlag = False,
        output: OutputOption = None,
    ) -> None:
        _command(ctx, workflow_id, verb, wait, json_out, output)

    command.__name__ = command.__qualname__ = verb.name
    command.__doc__ = verb.doc
    return command


cancel = _verb_command(
    _Verb(
        "cancel",
        "cancelling",
        "cancelled",
        "End running tasks (their whole process groups) and cancel the rest.",
    )
)
retry = _verb_command(
    _Verb(
        "retry",
        "retrying",
        "completed",
        "Resume a failed or cancelled workflow from its checkpoint.",
    )
)
rollback = _verb_command(
    _Verb(
        "rollback",
        "rolling back",
        "rolled_back",
        "Undo the completed operations, in reverse dependency order.",
    )
)


def monitor(ctx: typer.Context, workflow_id: WorkflowId) -> None:
    """Follow a workflow live; exit 0 only if it completes (Ctrl-C detaches)."""
    client = state(ctx).client()
    try:
        full = resolve_id(client, "workflow", workflow_id)
        final = follow(client, full, quiet=False)
    except KeyboardInterrupt:
        detached("workflow", workflow_id, f"provisioning workflow monitor {workflow_id}")
    except ClientError as exc:
        client_failure(exc)
    recap(final)
    finished_exit(final)


def stats(ctx: typer.Context, json_out: JsonFlag = False, output: OutputOption = None) -> None:
    """Workflows by status, and the task counts of the orchestrator."""
    client = state(ctx).client()
    try:
        counts: dict[str, int] = {}
        offset = 0
        while True:
            page = client.workflows(limit=1000, offset=offset)
            for wf in page["workflows"]:
                counts[wf["status"]] = counts.get(wf["status"], 0) + 1
            offset += len(page["workflows"])
            if offset >= page["total"] or not page["workflows"]:
                break
        tasks = client.status()["tasks"]
    except ClientError as exc:
        client_failure(exc)
    report = {"workflows": counts, "workflows_total": sum(counts.values()), "tasks": tasks}
    fmt = output_format(output, json_out)
    if fmt.machine:
        data(report, fmt)
        return
    counts_table({"workflows": report["workflows_total"], **counts}).print(fmt)
    counts_table(tasks).print(fmt)


def counts_table(counts: dict[str, int]) -> Table:
    """Counts by status, one per row (a row per status stays narrow however many)."""
    table = Table([Column("status", wrap=False), Column("count", wrap=False)])
    for key, number in counts.items():
        table.add_row(status_part(key), str(number))
    return table


WORKFLOW_COMMANDS: list[Callable[..., None]] = [
    submit,
    status,
    logs,
    cancel,
    retry,
    rollback,
    monitor,
]
BATCH_COMMANDS: list[Callable[..., None]] = [submit, monitor, status, rollback, stats]
for command in WORKFLOW_COMMANDS:
    app.command()(command)
app.command("list")(list_)

batch = typer.Typer(
    help="""The seed's names for the workflow commands (same engine, same ids).

\b
Examples:
  provisioning batch submit server-cluster.ncl --wait
  provisioning batch list
  provisioning batch stats""",
    no_args_is_help=True,
)
for command in BATCH_COMMANDS:
    batch.command()(command)
batch.command("list")(list_)
