"""``provisioning task``: single tasks on the orchestrator (every runner of ``POST /tasks``)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.table import Table

from ..client import ClientError, OrchestratorClient, TaskView
from ..tasks import AttemptStatus, NewTask
from . import dispatch
from .common import (
    EXIT_FAILED,
    EXIT_USAGE,
    client_failure,
    fail,
    out,
    print_json,
    state,
    styled,
    styled_status,
)
from .direct import run_direct

app = typer.Typer(help="Submit and inspect single tasks.", no_args_is_help=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Machine-readable output only.")]


def _params(raw: str | None) -> dict[str, Any]:
    if raw is None:
        return {}
    source = "--params"
    if raw.startswith("@"):
        path = Path(raw[1:])
        source = str(path)
        try:
            raw = path.read_text(encoding="utf-8")
        except OSError as exc:
            fail(f"--params: cannot read {path}: {exc.strerror}", EXIT_USAGE)
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        fail(
            f"{source}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})",
            EXIT_USAGE,
        )
    if not isinstance(value, dict):
        fail(f"{source}: expected a JSON object", EXIT_USAGE)
    return value


def _default_name(
    argv: list[str] | None, nu: tuple[str, str] | None, python: tuple[str, str] | None
) -> str:
    if argv:
        return " ".join(argv)[:200]
    module, function = nu or python or ("task", "")
    return f"{module} {function}".strip()


def follow(client: OrchestratorClient, task_id: str, *, quiet: bool = False) -> TaskView:
    """Show a task's progress until it ends; return its final state."""
    last: tuple[str | None, int | None] = (None, None)
    while True:
        task = client.task(task_id)
        key = (task["status"], task["progress"])
        if not quiet and key != last:
            message = task.get("progress_message") or ""
            out.print(styled(styled_status(task["status"]), f" {task['progress']:>3}% {message}"))
            last = key
        if task["status"] not in ("pending", "running"):
            return task
        time.sleep(0.2)  # A client's polling interval, not a stand-in for a condition.


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
    wait: Annotated[
        bool, typer.Option("--wait", help="Follow; exit 0 only if it completed.")
    ] = False,
    orchestrated: Annotated[
        bool, typer.Option("--orchestrated", help="Run on the orchestrator.")
    ] = False,
    direct: Annotated[
        bool, typer.Option("--direct", help="Run here, without the orchestrator.")
    ] = False,
    json_out: JsonFlag = False,
) -> None:
    """Queue one task: `-- ARGV...`, `--nu MODULE FUNCTION` or `--python MODULE FUNCTION`."""
    runners = [r for r in (argv, nu, python) if r]
    if len(runners) != 1:
        fail(
            "give exactly one of: -- ARGV..., --nu MODULE FUNCTION, --python MODULE FUNCTION",
            EXIT_USAGE,
        )
    if argv:
        run: dict[str, Any] = {"command": list(argv)}
    elif nu:
        run = {"nushell": {"module": nu[0], "function": nu[1]}}
    else:
        assert python is not None
        run = {"python": {"module": python[0], "function": python[1]}}
    body: dict[str, Any] = {
        "name": name or _default_name(argv, nu, python),
        "run": run,
        "params": _params(params),
        "priority": priority,
    }
    if timeout is not None:
        body["timeout_seconds"] = timeout
    if max_attempts is not None:
        body["retry"] = {"max_attempts": max_attempts}
    route = dispatch.route(state(ctx), "task.submit", orchestrated=orchestrated, direct=direct)
    if route.client is None:
        _submit_direct(ctx, body, json_out)
        return
    client = route.client
    try:
        task_id = client.submit_task(body)
        if not wait:
            if json_out:
                print_json({"task_id": task_id, "status": "queued"})
            else:
                out.print(f"Task submitted: {task_id}")
            return
        if not json_out:
            out.print(f"Task submitted: {task_id}")
        task = follow(client, task_id, quiet=json_out)
    except ClientError as exc:
        client_failure(exc)
    if json_out:
        print_json(task)
    elif task["status"] != "completed":
        fail(f"task {task['status']}: {task.get('error') or ''}".rstrip(": "), EXIT_FAILED)
    elif task.get("result") is not None:
        out.print_json(data=task["result"])
    if task["status"] != "completed":
        raise typer.Exit(EXIT_FAILED)


def _submit_direct(ctx: typer.Context, body: dict[str, Any], json_out: bool) -> None:
    try:
        new = NewTask.model_validate(body)
    except ValidationError as exc:
        fail(f"invalid task: {exc.errors()[0]['msg']}", EXIT_USAGE)
    outcome = run_direct(
        new.run,
        new.params,
        state(ctx).loaded.settings,
        timeout=new.timeout_seconds,
        echo=not json_out,
    )
    if json_out:
        print_json(
            {
                "mode": "direct",
                "status": outcome.status.value,
                "exit_code": outcome.exit_code,
                "result": outcome.result,
                "error": outcome.error,
            }
        )
    elif outcome.status is AttemptStatus.COMPLETED and outcome.has_result:
        out.print_json(data=outcome.result)
    if outcome.status is not AttemptStatus.COMPLETED:
        if not json_out:
            fail(f"task {outcome.status.value}: {outcome.error or ''}".rstrip(": "), EXIT_FAILED)
        raise typer.Exit(EXIT_FAILED)


@app.command()
def status(ctx: typer.Context, task_id: str, json_out: JsonFlag = False) -> None:
    """One task with its attempts."""
    try:
        task = state(ctx).client().task(task_id)
    except ClientError as exc:
        client_failure(exc)
    if json_out:
        print_json(task)
        return
    out.print(styled((task["name"], "bold"), f"  {task['id']}"))
    out.print(
        styled("status    ", styled_status(task["status"]), f"  progress {task['progress']}%")
    )
    out.print(f"priority  {task['priority']}   created {task['created_at']}")
    if task.get("error"):
        out.print(f"error     {task['error']}")
    if task.get("result") is not None:
        out.print("result")
        out.print_json(data=task["result"])
    table = Table("attempt", "status", "exit", "started", "finished", "error")
    for attempt in task.get("attempts") or []:
        table.add_row(
            str(attempt["number"]),
            styled_status(attempt["status"]),
            "" if attempt["exit_code"] is None else str(attempt["exit_code"]),
            attempt["started_at"] or "",
            attempt["finished_at"] or "",
            (attempt["error"] or "").splitlines()[0] if attempt["error"] else "",
        )
    if table.row_count:
        out.print(table)


@app.command("list")
def list_(
    ctx: typer.Context,
    status_: Annotated[
        str | None, typer.Option("--status", help="Only tasks in this status.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    offset: Annotated[int, typer.Option(min=0)] = 0,
    json_out: JsonFlag = False,
) -> None:
    """Tasks, newest first."""
    try:
        page = state(ctx).client().tasks(status_.lower() if status_ else None, limit, offset)
    except ClientError as exc:
        client_failure(exc)
    if json_out:
        print_json(page)
        return
    table = Table("id", "name", "status", "priority", "progress", "attempt", "created")
    for task in page["tasks"]:
        table.add_row(
            task["id"],
            task["name"],
            styled_status(task["status"]),
            task["priority"],
            f"{task['progress']}%",
            str(task["attempt"]),
            task["created_at"],
        )
    out.print(table)
    out.print(f"{len(page['tasks'])} of {page['total']} task(s)")


@app.command()
def cancel(ctx: typer.Context, task_id: str, json_out: JsonFlag = False) -> None:
    """Cancel a pending task or stop a running one."""
    try:
        task = state(ctx).client().cancel(task_id)
    except ClientError as exc:
        client_failure(exc)
    if json_out:
        print_json(task)
    else:
        note = " (stopping)" if task["status"] == "running" else ""
        out.print(styled(f"{task_id}: ", styled_status(task["status"]), note))


@app.command()
def logs(
    ctx: typer.Context,
    task_id: str,
    follow_: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new lines.")
    ] = False,
    json_out: JsonFlag = False,
) -> None:
    """A task's output lines."""
    client = state(ctx).client()
    after = 0
    try:
        while True:
            page = client.logs(task_id, after)
            for line in page["lines"]:
                if json_out:
                    print(json.dumps(line))
                else:
                    out.print(
                        line["line"],
                        style="red" if line["stream"] == "stderr" else None,
                        markup=False,
                    )
            after = page["next_after"]
            if not follow_:
                return
            if not page["lines"] and client.task(task_id)["status"] not in ("pending", "running"):
                return
            time.sleep(0.3)  # A client's polling interval.
    except ClientError as exc:
        client_failure(exc)
