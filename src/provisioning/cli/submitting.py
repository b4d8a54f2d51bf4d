"""What ``workflow submit`` and ``task submit`` do, without Typer: the commands of
``workflow.py`` and ``task.py`` call these, and so does the CLI's quick entry for the
commands a user waits on (``quick.py``), which parses their plain forms itself and
leaves everything else (``--help``, errors, other forms) to Typer."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from ..client import ClientError, OrchestratorClient, TaskView, WorkflowView
from .common import EXIT_FAILED, EXIT_USAGE, State, client_failure, fail, say
from .labels import outcome_of, reports_no_change, target_of, task_label
from .output import Column, Format, Table, data, status_part

if TYPE_CHECKING:
    from ..workflow import Plan


WORKFLOW_DONE = {"completed", "failed", "cancelled", "rolled_back", "rollback_failed"}


def _problems_text(path: Path, problems: list[Any]) -> str:
    from ..schemas.loader import line_of_operation

    lines = []
    for problem in problems:
        line = line_of_operation(path, problem.op_id) if problem.op_id else None
        where = f"{path}:{line}" if line else str(path)
        lines.append(f"{where}: {problem.where}: {problem.message}")
    return "invalid workflow:\n  " + "\n  ".join(lines)


def with_workspace(st: State, data: Any) -> Any:
    """Platform operations (``target`` + ``type``) act on the current workspace: give
    them its folder, and its default infra when they name none."""
    loaded = st.loaded
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


def load_body(st: State, path: Path, priority: str | None) -> Any:
    """The workflow in ``path`` as the body to send (with ``priority`` and the workspace
    applied), not yet validated; exit 2 when it cannot be read."""
    from ..schemas import LoadError, load_workflow_file

    try:
        data = load_workflow_file(path)
    except LoadError as exc:
        fail(str(exc), EXIT_USAGE)
    if priority is not None and isinstance(data, dict):
        data = {**data, "priority": priority}
    return with_workspace(st, data)


def validated(st: State, path: Path, data: Any, *, check_runners: bool = False) -> Plan:
    """The plan of ``data`` (read from ``path``); exit 2 with the reasons, each naming
    the file and the line, if it is invalid.

    Runners are checked here only on request (``--check``): the orchestrator checks
    them against *its* library and configuration, which may not be this machine's."""
    from ..workflow import PlanError, build_plan
    from ..workflow.validate import check_plan, parse_spec

    try:
        plan = build_plan(parse_spec(data))
        if check_runners:
            check_plan(plan, st.loaded.settings)
    except PlanError as exc:
        fail(_problems_text(path, exc.problems), EXIT_USAGE)
    return plan


def load_plan(
    st: State, path: Path, priority: str | None, *, check_runners: bool = False
) -> tuple[dict[str, Any], Plan]:
    """Read, evaluate and validate a workflow file; exit 2 with the reasons if invalid."""
    data = load_body(st, path, priority)
    return data, validated(st, path, data, check_runners=check_runners)


def print_plan(plan: Plan) -> None:
    spec = plan.spec
    say(
        (spec.name, "bold"),
        f" {spec.version}: {len(plan.steps)} operation(s), "
        f"{plan.task_count} task(s), parallel_limit {spec.parallel_limit}, "
        f"priority {spec.priority}",
    )
    for number, layer in enumerate(plan.layers):
        say(f"layer {number}:")
        for step in layer:
            deps = f" <- {', '.join(step.op.depends_on)}" if step.op.depends_on else ""
            fan = f" x{len(step.items)}" if len(step.items) > 1 else ""
            extra = f" (on_failure {step.op.on_failure}" + (", undo" if step.op.undo else "") + ")"
            say(f"  {step.id}{fan}{deps}{extra}")


def _workflow_client(st: State, operation: str) -> OrchestratorClient:
    """A workflow runs only on the orchestrator: no fallback to direct mode."""
    from . import dispatch

    route = dispatch.route(st, operation, only_orchestrated=True)
    assert route.client is not None
    return route.client


def finished_exit(workflow: Mapping[str, Any]) -> None:
    if workflow["status"] != "completed":
        raise SystemExit(EXIT_FAILED)


def submit_workflow(
    st: State,
    group: str,
    file: Path,
    *,
    wait: bool,
    priority: str | None,
    check: bool,
    fmt: Format,
) -> None:
    """Validate a workflow file and queue it (with ``check``: print the plan, queue nothing)."""
    json_out = fmt.machine
    if check:
        _, plan = load_plan(st, file, priority, check_runners=True)
        if json_out:
            data(
                {
                    "name": plan.spec.name,
                    "tasks": plan.task_count,
                    "layers": [[s.id for s in layer] for layer in plan.layers],
                },
                fmt,
            )
        else:
            print_plan(plan)
        return
    body = load_body(st, file, priority)
    # The orchestrator validates what it receives: with one answering, the file is
    # checked here only when it refuses it (for the message naming the file and line).
    # Without one, it is checked first, before anything is started or refused.
    from . import dispatch

    client = dispatch.answering(st)
    if client is None:
        validated(st, file, body)
        client = _workflow_client(st, f"{group}.submit")
    try:
        submitted = client.submit_workflow(body)
    except ClientError as exc:
        if exc.status in (400, 413, 422):
            validated(st, file, body)
        if isinstance(exc.body, dict) and exc.body.get("problems"):
            lines = [f"{p['where']}: {p['message']}" for p in exc.body["problems"]]
            fail("the orchestrator rejected the workflow:\n  " + "\n  ".join(lines), EXIT_USAGE)
        client_failure(exc)
    workflow_id = submitted["workflow_id"]
    if json_out and not wait:
        data(submitted, fmt)
        return
    if not json_out:
        say(f"Workflow submitted: {workflow_id}")
    if wait:
        final = follow_workflow(client, workflow_id, quiet=json_out)
        if json_out:
            data(final, fmt)
        else:
            recap(final)
        finished_exit(final)
    elif not json_out:
        say(f"follow it: provisioning workflow monitor {workflow_id[:8]}")


def follow_workflow(client: OrchestratorClient, workflow_id: str, *, quiet: bool) -> WorkflowView:
    """Follow a workflow until it ends (live view unless ``quiet``); Ctrl-C detaches."""
    try:
        if quiet:
            # A long poll: the reply comes as the workflow finishes, not on a next poll.
            while True:
                workflow = client.workflow(workflow_id, steps=False, wait=client.long_poll_seconds)
                if workflow["status"] in WORKFLOW_DONE:
                    return client.workflow(workflow_id)
        from .monitor import monitor_workflow

        return monitor_workflow(client, workflow_id)
    except KeyboardInterrupt:
        detached("workflow", workflow_id, f"provisioning workflow monitor {workflow_id}")


def recap(workflow: Mapping[str, Any]) -> None:
    """The end of a run, like Ansible's: ok / changed / failed per target, how long it
    took, what was already in place, the failed tasks' error tails and the next command."""
    name, status_ = workflow["name"], workflow["status"]
    say()
    say(("RECAP", "bold"), f" {name} ", status_part(status_), duration(workflow))
    recap_table(workflow).print()
    tasks = [(step["id"], task) for step in workflow.get("steps") or [] for task in step["tasks"]]
    unchanged = [t for _, t in tasks if outcome_of(t) == "ok" and t.get("progress_message")]
    for task in unchanged[:10]:
        say(("ok: ", "green"), str(task["progress_message"]))
    for step_id, task in [(s, t) for s, t in tasks if outcome_of(t) == "failed"][:3]:
        tail = (task.get("error") or "").strip().splitlines()[-3:]
        say((f"failed: {task_label(task, step_id)}: ", "red"), " | ".join(tail) or task["status"])
    short = workflow["id"][:8]
    if status_ in ("failed", "cancelled", "rollback_failed"):
        say(f"next: provisioning workflow retry {short}   (details: workflow logs {short})")
    elif status_ == "completed" and tasks and all(reports_no_change(t) for _, t in tasks):
        say("nothing changed: everything was already in place")


def duration(workflow: Mapping[str, Any]) -> str:
    from datetime import datetime

    start, end = workflow.get("started_at"), workflow.get("completed_at")
    if not start or not end:
        return ""
    seconds = (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()
    return f" in {seconds:.1f}s"


RECAP_COLUMNS = ("ok", "changed", "failed", "other")


def recap_table(workflow: Mapping[str, Any]) -> Table:
    table = Table([Column("target", wrap=False), *(Column(c, wrap=False) for c in RECAP_COLUMNS)])
    counts: dict[str, dict[str, int]] = {}
    for step in workflow.get("steps") or []:
        for task in step["tasks"]:
            row = counts.setdefault(target_of(task, step["id"]), dict.fromkeys(RECAP_COLUMNS, 0))
            outcome = outcome_of(task)
            row[outcome if outcome in row else "other"] += 1
    styles = {"ok": "green", "changed": "yellow", "failed": "red", "other": ""}
    for target, row in counts.items():
        table.add_row(
            target,
            *((f"{row[c]}", styles[c]) if row[c] else "0" for c in RECAP_COLUMNS),
        )
    return table


def task_params(raw: str | None) -> dict[str, Any]:
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


def follow_task(client: OrchestratorClient, task_id: str, *, quiet: bool = False) -> TaskView:
    """Show a task's progress until it ends; return its final state. Ctrl-C detaches."""
    last: tuple[str | None, int | None] = (None, None)
    try:
        while True:
            # Held by the daemon until the task ends (or a moment passes, to show progress).
            task = client.task(task_id, wait=client.long_poll_seconds if quiet else 0.2)
            key = (task["status"], task["progress"])
            if not quiet and key != last:
                message = task.get("progress_message") or ""
                say(status_part(task["status"]), f" {task['progress']:>3}% {message}".rstrip())
                last = key
            if task["status"] not in ("pending", "running"):
                return task
    except KeyboardInterrupt:
        detached("task", task_id, f"provisioning task status {task_id}")


def detached(kind: str, given_id: str, again: str) -> NoReturn:
    """What Ctrl-C while following says: the work goes on without us."""
    from .output import notice

    notice(f"detached; {kind} {given_id} still running — `{again}` to follow again")
    raise SystemExit(130)


def submit_task(
    st: State,
    *,
    argv: list[str] | None,
    nu: tuple[str, str] | None,
    python: tuple[str, str] | None,
    name: str | None,
    params: str | None,
    priority: str,
    timeout: float | None,
    max_attempts: int | None,
    wait: bool,
    orchestrated: bool,
    direct: bool,
    fmt: Format,
) -> None:
    """Queue one task: ``argv``, ``nu`` (module, function) or ``python`` (module, function)."""
    json_out = fmt.machine
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
        "params": task_params(params),
        "priority": priority,
    }
    if timeout is not None:
        body["timeout_seconds"] = timeout
    if max_attempts is not None:
        body["retry"] = {"max_attempts": max_attempts}
    from . import dispatch

    route = dispatch.route(st, "task.submit", orchestrated=orchestrated, direct=direct)
    if route.client is None:
        _submit_direct(st, body, fmt)
        return
    client = route.client
    try:
        task_id = client.submit_task(body)
        if not wait:
            if json_out:
                data({"task_id": task_id, "status": "queued"}, fmt)
            else:
                say(f"Task submitted: {task_id}")
                say(f"follow it: provisioning task logs {task_id[:8]} -f")
            return
        if not json_out:
            say(f"Task submitted: {task_id}")
        task = follow_task(client, task_id, quiet=json_out)
    except ClientError as exc:
        client_failure(exc)
    if json_out:
        data(task, fmt)
    elif task["status"] != "completed":
        fail(f"task {task['status']}: {task.get('error') or ''}".rstrip(": "), EXIT_FAILED)
    elif task.get("result") is not None:
        data(task["result"])
    if task["status"] != "completed":
        raise SystemExit(EXIT_FAILED)


def _submit_direct(st: State, body: Mapping[str, Any], fmt: Format) -> None:
    from pydantic import ValidationError

    from ..tasks import AttemptStatus, NewTask
    from .direct import run_direct

    json_out = fmt.machine
    try:
        new = NewTask.model_validate(body)
    except ValidationError as exc:
        fail(f"invalid task: {exc.errors()[0]['msg']}", EXIT_USAGE)
    outcome = run_direct(
        new.run,
        new.params,
        st.loaded.settings,
        timeout=new.timeout_seconds,
        echo=not json_out,
    )
    if json_out:
        data(
            {
                "mode": "direct",
                "status": outcome.status.value,
                "exit_code": outcome.exit_code,
                "result": outcome.result,
                "error": outcome.error,
            },
            fmt,
        )
    elif outcome.status is AttemptStatus.COMPLETED and outcome.has_result:
        data(outcome.result)
    if outcome.status is not AttemptStatus.COMPLETED:
        if not json_out:
            fail(f"task {outcome.status.value}: {outcome.error or ''}".rstrip(": "), EXIT_FAILED)
        raise SystemExit(EXIT_FAILED)
