"""``provisioning workflow``: batch workflows on the orchestrator (``batch`` is the
seed's name for the same commands)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from ..client import ClientError, OrchestratorClient, WorkflowTaskView, WorkflowView
from ..schemas import LoadError, load_workflow_file
from ..schemas.loader import line_of_operation
from ..workflow import Plan, PlanError, build_plan
from ..workflow.validate import check_plan, parse_spec
from . import dispatch
from .common import (
    EXIT_FAILED,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    client_failure,
    fail,
    out,
    print_json,
    state,
    styled,
    styled_status,
)
from .monitor import monitor_workflow

app = typer.Typer(help="Submit and follow batch workflows.", no_args_is_help=True)


class PriorityChoice(StrEnum):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    CRITICAL = "critical"


JsonFlag = Annotated[bool, typer.Option("--json", help="Machine-readable output only.")]
WORKFLOW_DONE = {"completed", "failed", "cancelled", "rolled_back", "rollback_failed"}


def _problems_text(path: Path, problems: list[Any]) -> str:
    lines = []
    for problem in problems:
        line = line_of_operation(path, problem.op_id) if problem.op_id else None
        where = f"{path}:{line}" if line else str(path)
        lines.append(f"{where}: {problem.where}: {problem.message}")
    return "invalid workflow:\n  " + "\n  ".join(lines)


def with_workspace(ctx: typer.Context, data: Any) -> Any:
    """Platform operations (``target`` + ``type``) act on the current workspace: give
    them its folder, and its default infra when they name none."""
    loaded = state(ctx).loaded
    if loaded.workspace_dir is None or not isinstance(data, dict):
        return data
    operations = []
    for op in data.get("operations") or []:
        if isinstance(op, dict) and ("target" in op or "type" in op):
            given = op.get("params")
            params: dict[str, Any] = given if isinstance(given, dict) else {}
            op = {
                **op,
                "infra": op.get("infra") or loaded.settings.workspace.default_infra,
                "params": {"workspace_dir": str(loaded.workspace_dir), **params},
            }
        operations.append(op)
    return {**data, "operations": operations}


def load_plan(
    ctx: typer.Context, path: Path, priority: str | None, *, check_runners: bool = False
) -> tuple[dict[str, Any], Plan]:
    """Read, evaluate and validate a workflow file; exit 2 with the reasons if invalid.

    Runners are checked here only on request (``--check``): the orchestrator checks
    them against *its* library and configuration, which may not be this machine's."""
    try:
        data = load_workflow_file(path)
    except LoadError as exc:
        fail(str(exc), EXIT_USAGE)
    if priority is not None and isinstance(data, dict):
        data = {**data, "priority": priority}
    data = with_workspace(ctx, data)
    try:
        spec = parse_spec(data)
        plan = build_plan(spec)
        if check_runners:
            check_plan(plan, state(ctx).loaded.settings)
    except PlanError as exc:
        fail(_problems_text(path, exc.problems), EXIT_USAGE)
    return data, plan


def print_plan(plan: Plan) -> None:
    spec = plan.spec
    out.print(
        styled(
            (spec.name, "bold"),
            f" {spec.version}: {len(plan.steps)} operation(s), "
            f"{plan.task_count} task(s), parallel_limit {spec.parallel_limit}, "
            f"priority {spec.priority}",
        )
    )
    for number, layer in enumerate(plan.layers):
        out.print(f"layer {number}:")
        for step in layer:
            deps = f" <- {', '.join(step.op.depends_on)}" if step.op.depends_on else ""
            fan = f" x{len(step.items)}" if len(step.items) > 1 else ""
            extra = f" (on_failure {step.op.on_failure}" + (", undo" if step.op.undo else "") + ")"
            out.print(f"  {step.id}{fan}{deps}{extra}")


def _client(ctx: typer.Context, operation: str) -> OrchestratorClient:
    route = dispatch.route(state(ctx), operation)
    if route.client is None:
        fail(
            f"{operation} needs the orchestrator ({route.decision.reason}); start it with: "
            "provisioning orchestrator start --daemon",
            EXIT_UNREACHABLE,
        )
    return route.client


def finished_exit(workflow: Mapping[str, Any]) -> None:
    if workflow["status"] != "completed":
        raise typer.Exit(EXIT_FAILED)


def submit(
    ctx: typer.Context,
    file: Annotated[
        Path,
        typer.Argument(help="Workflow file: .ncl, .json, .yaml, .toml (or the deprecated KCL .k)."),
    ],
    wait: Annotated[
        bool, typer.Option("--wait", help="Follow; exit 0 only if it completed.")
    ] = False,
    priority: Annotated[
        PriorityChoice | None, typer.Option(help="Override the workflow's priority.")
    ] = None,
    check: Annotated[
        bool, typer.Option("--check", help="Validate and show the plan only.")
    ] = False,
    json_out: JsonFlag = False,
) -> None:
    """Validate a workflow file and queue it (with --check: print the plan, queue nothing)."""
    data, plan = load_plan(ctx, file, priority.value if priority else None, check_runners=check)
    if check:
        if json_out:
            print_json(
                {
                    "name": plan.spec.name,
                    "tasks": plan.task_count,
                    "layers": [[s.id for s in layer] for layer in plan.layers],
                }
            )
        else:
            print_plan(plan)
        return
    group = ctx.parent.info_name if ctx.parent is not None else "workflow"
    client = _client(ctx, f"{group}.submit")
    try:
        submitted = client.submit_workflow(data)
    except ClientError as exc:
        if isinstance(exc.body, dict) and exc.body.get("problems"):
            lines = [f"{p['where']}: {p['message']}" for p in exc.body["problems"]]
            fail("the orchestrator rejected the workflow:\n  " + "\n  ".join(lines), EXIT_USAGE)
        client_failure(exc)
    workflow_id = submitted["workflow_id"]
    if json_out and not wait:
        print_json(submitted)
        return
    if not json_out:
        out.print(f"Workflow submitted: {workflow_id}")
    if wait:
        final = follow(client, workflow_id, quiet=json_out)
        if json_out:
            print_json(final)
        finished_exit(final)


def follow(client: OrchestratorClient, workflow_id: str, *, quiet: bool) -> WorkflowView:
    if quiet:
        while True:
            workflow = client.workflow(workflow_id)
            if workflow["status"] in WORKFLOW_DONE:
                return workflow
            time.sleep(0.2)  # A client's polling interval.
    return monitor_workflow(client, workflow_id)


def status(ctx: typer.Context, workflow_id: str, json_out: JsonFlag = False) -> None:
    """A workflow: status, checkpoint, every step and task."""
    client = state(ctx).client()
    try:
        workflow = client.workflow(workflow_id)
    except ClientError as exc:
        client_failure(exc)
    if json_out:
        print_json(workflow)
        return
    tasks = workflow["tasks"]
    out.print(styled((workflow["name"], "bold"), f" {workflow['id']}"))
    out.print(
        styled(
            "status ",
            styled_status(workflow["status"]),
            f"  phase {workflow['phase']}  progress {workflow['progress']}%  tasks "
            f"{tasks['completed']}/{tasks['total']} completed, {tasks['failed']} failed",
        )
    )
    if workflow.get("error"):
        out.print(f"error  {workflow['error']}")
    checkpoint = workflow["checkpoint"]
    out.print(
        f"checkpoint: {', '.join(checkpoint['completed_steps'] or []) or '(none)'}"
        f" at {checkpoint['updated_at'] or '-'}"
    )
    table = Table("step", "layer", "status", "task", "task status", "attempt", "progress", "error")
    for step in workflow["steps"] or []:
        step_tasks: list[WorkflowTaskView | None] = [*step["tasks"]] or [None]
        for task in step_tasks:
            table.add_row(
                step["id"],
                str(step["layer"]),
                styled_status(step["status"]),
                task["name"].rsplit("/", 1)[-1] if task else "",
                styled_status(task["status"]) if task else "",
                str(task["attempt"]) if task else "",
                f"{task['progress']}%" if task else "",
                (task.get("error") or "").splitlines()[0] if task and task.get("error") else "",
            )
    out.print(table)


def list_(
    ctx: typer.Context,
    status_: Annotated[str | None, typer.Option("--status", help="Only this status.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    json_out: JsonFlag = False,
) -> None:
    """Workflows, newest first."""
    try:
        page = state(ctx).client().workflows(status_.lower() if status_ else None, limit)
    except ClientError as exc:
        client_failure(exc)
    if json_out:
        print_json(page)
        return
    table = Table("id", "name", "status", "progress", "tasks", "created")
    for wf in page["workflows"]:
        table.add_row(
            wf["id"],
            wf["name"],
            styled_status(wf["status"]),
            f"{wf['progress']}%",
            f"{wf['tasks']['completed']}/{wf['tasks']['total']}",
            wf["created_at"],
        )
    out.print(table)
    out.print(f"{len(page['workflows'])} of {page['total']} workflow(s)")


def _command(ctx: typer.Context, workflow_id: str, verb: str, wait: bool, json_out: bool) -> None:
    client = state(ctx).client()
    try:
        workflow = client.workflow_command(workflow_id, verb)
        if wait and workflow["status"] not in WORKFLOW_DONE:
            workflow = follow(client, workflow_id, quiet=json_out)
    except ClientError as exc:
        client_failure(exc)
    if json_out:
        print_json(workflow)
    else:
        out.print(styled(f"{workflow_id}: ", styled_status(workflow["status"])))
    if wait:
        wanted = (
            "rolled_back"
            if verb == "rollback"
            else "cancelled"
            if verb == "cancel"
            else "completed"
        )
        if workflow["status"] != wanted:
            raise typer.Exit(EXIT_FAILED)


def cancel(
    ctx: typer.Context,
    workflow_id: str,
    wait: Annotated[bool, typer.Option("--wait")] = False,
    json_out: JsonFlag = False,
) -> None:
    """End running tasks (their whole process groups) and cancel the rest."""
    _command(ctx, workflow_id, "cancel", wait, json_out)


def retry(
    ctx: typer.Context,
    workflow_id: str,
    wait: Annotated[bool, typer.Option("--wait")] = False,
    json_out: JsonFlag = False,
) -> None:
    """Resume a failed or cancelled workflow from its checkpoint."""
    _command(ctx, workflow_id, "retry", wait, json_out)


def rollback(
    ctx: typer.Context,
    workflow_id: str,
    wait: Annotated[bool, typer.Option("--wait")] = False,
    json_out: JsonFlag = False,
) -> None:
    """Undo the completed operations, in reverse dependency order."""
    _command(ctx, workflow_id, "rollback", wait, json_out)


def monitor(ctx: typer.Context, workflow_id: str) -> None:
    """Follow a workflow live; exit 0 only if it completes."""
    client = state(ctx).client()
    try:
        final = monitor_workflow(client, workflow_id)
    except ClientError as exc:
        client_failure(exc)
    finished_exit(final)


def stats(ctx: typer.Context, json_out: JsonFlag = False) -> None:
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
    if json_out:
        print_json(report)
        return
    table = Table("workflows", *counts.keys())
    table.add_row(str(report["workflows_total"]), *(str(n) for n in counts.values()))
    out.print(table)
    tasks_table = Table(*tasks.keys())
    tasks_table.add_row(*(str(n) for n in tasks.values()))
    out.print(tasks_table)


WORKFLOW_COMMANDS: list[Callable[..., None]] = [submit, status, cancel, retry, rollback, monitor]
BATCH_COMMANDS: list[Callable[..., None]] = [submit, monitor, status, rollback, stats]
for command in WORKFLOW_COMMANDS:
    app.command()(command)
app.command("list")(list_)

batch = typer.Typer(help="The seed's batch commands, on the workflow engine.", no_args_is_help=True)
for command in BATCH_COMMANDS:
    batch.command()(command)
batch.command("list")(list_)
