"""What server, taskserv and cluster commands share, in one shape: the options every
one of them takes (:func:`operation`), finding the workspace and infra, the plan
(``--check``), the confirmation of a destroy, and running the workflow directly or on
the orchestrator."""

from __future__ import annotations

import functools
import inspect
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from ..client import ClientError
from ..infra import Infra, InfraError, load_infra
from ..operations import plans
from ..providers import Provider, ProviderContext, ProviderError, get_provider
from ..taskservs import CatalogError
from .common import (
    EXIT_FAILED,
    EXIT_USAGE,
    Format,
    client_failure,
    fail,
    notify,
    output_format,
    say,
    state,
)
from .options import DirectFlag, JsonFlag, OrchestratedFlag, OutputOption
from .output import data, is_terminal

InfraOption = Annotated[
    str | None,
    typer.Option("--infra", metavar="NAME", help="The infra (default: workspace.default_infra)."),
]


@dataclass(frozen=True)
class RunOptions:
    """The options of every server, taskserv and cluster command that changes something."""

    infra: str | None
    check: bool
    wait: bool | None
    orchestrated: bool
    direct: bool
    fmt: Format
    auto_approve: bool

    @property
    def machine(self) -> bool:
        return self.fmt.machine

    def follows(self) -> bool:
        """``--wait``/``--no-wait``, else follow when a person watches a terminal."""
        if self.wait is not None:
            return self.wait
        return not self.machine and is_terminal(sys.stdout)


def _shared(destroys: bool) -> list[inspect.Parameter]:
    keyword = inspect.Parameter.KEYWORD_ONLY
    shared = [
        ("infra", InfraOption, None),
        (
            "check",
            Annotated[bool, typer.Option("--check", help="Show the plan; change nothing.")],
            False,
        ),
        (
            "wait",
            Annotated[
                bool | None,
                typer.Option(
                    "--wait/--no-wait",
                    help="Follow the run to its end (default: when on a terminal).",
                    show_default=False,
                ),
            ],
            None,
        ),
        ("orchestrated", OrchestratedFlag, False),
        ("direct", DirectFlag, False),
        ("json_out", JsonFlag, False),
        ("output", OutputOption, None),
    ]
    if destroys:
        shared.append(
            (
                "auto_approve",
                Annotated[
                    bool,
                    typer.Option("--auto-approve", "-y", help="Destroy without asking for `yes`."),
                ],
                False,
            )
        )
    return [inspect.Parameter(n, keyword, annotation=a, default=d) for n, a, d in shared]


def operation(
    app: typer.Typer, name: str, *, destroys: bool = False
) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Register ``fn(ctx, ..., opts: RunOptions)`` as command ``name`` of ``app``, with
    the shared options (:class:`RunOptions`) added to its own."""

    def register(fn: Callable[..., None]) -> Callable[..., None]:
        own = [
            p for p in inspect.signature(fn, eval_str=True).parameters.values() if p.name != "opts"
        ]
        extra = _shared(destroys)
        names = [p.name for p in extra]

        @functools.wraps(fn)
        def command(*args: Any, **kwargs: Any) -> None:
            given = {n: kwargs.pop(n) for n in names}
            opts = RunOptions(
                infra=given["infra"],
                check=given["check"],
                wait=given["wait"],
                orchestrated=given["orchestrated"],
                direct=given["direct"],
                fmt=output_format(given["output"], given["json_out"]),
                auto_approve=given.get("auto_approve", False),
            )
            fn(*args, opts=opts, **kwargs)

        parameters = [*own, *extra]
        command.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in parameters}
        app.command(name)(command)
        return fn

    return register


def workspace_dir(ctx: typer.Context) -> Path:
    found = state(ctx).loaded.workspace_dir
    if found is None:
        fail(
            "not inside a workspace: run `provisioning workspace init NAME` and work in it, "
            "or set PROVISIONING_WORKSPACE",
            EXIT_USAGE,
        )
    return found


def infra_of(ctx: typer.Context, name: str | None) -> tuple[Path, Infra]:
    workspace = workspace_dir(ctx)
    chosen = name or state(ctx).loaded.settings.workspace.default_infra
    try:
        return workspace, load_infra(workspace, chosen)
    except InfraError as exc:
        fail(str(exc), EXIT_USAGE)


SYMBOLS = {
    "create": ("+", "green", "create"),
    "install": ("+", "green", "install"),
    "update": ("~", "yellow", "update"),
    "delete": ("-", "red", "destroy"),
    "remove": ("-", "red", "remove"),
}


def plan_summary(found: list[dict[str, Any]]) -> tuple[int, int, int]:
    add = sum(1 for c in found if c["action"] in ("create", "install"))
    change = sum(1 for c in found if c["action"] == "update")
    destroy = sum(1 for c in found if c["action"] in ("delete", "remove"))
    return add, change, destroy


def show_plan(workflow: dict[str, Any], found: list[dict[str, Any]]) -> None:
    """Each change as Terraform shows it (``+``, ``~`` old -> new, ``-``), then the totals."""
    for change in found:
        symbol = SYMBOLS.get(change["action"])
        if symbol is None:
            continue
        mark, style, verb = symbol
        what = (
            f"taskserv {change['taskserv']} on {change['server']}"
            if change.get("taskserv")
            else f"server {change['server']}"
        )
        say("  ", (f"{mark} {what}", style), f"  ({verb})")
        if change.get("drift"):
            say(f"      {change['drift']}")
        for field, (old, new) in (change.get("changes") or {}).items():
            say(f"      {field}: {old!r} -> {new!r}")
    add, change_, destroy = plan_summary(found)
    if add + change_ + destroy == 0:
        say("No changes. The infra matches its definition.")
    else:
        say(("Plan:", "bold"), f" {add} to add, {change_} to change, {destroy} to destroy.")


def provider_problems(
    ctx: typer.Context, workspace: Path, infra: Infra, workflow: dict[str, Any]
) -> list[str]:
    """Values a provider would refuse on apply (an unknown plan or zone), found at
    ``--check`` by asking each provider, as ``terraform plan`` asks its providers."""
    problems = []
    for op in workflow["operations"]:
        if op.get("target") != "server" or op.get("type") != "create":
            continue
        for hostname in op.get("items", []):
            server = infra.server(hostname)
            if server.plan is None and server.zone is None:
                continue
            try:
                found = _provider(ctx, workspace, infra, server.provider).check_spec(server.spec())
            except ProviderError as exc:
                notify(f"{hostname}: cannot ask {server.provider} about its values ({exc})")
                continue
            problems += [f"server {hostname}: {problem}" for problem in found]
    return problems


def _provider(ctx: typer.Context, workspace: Path, infra: Infra, name: str) -> Provider:
    """The workspace's provider ``name``, made once per command."""
    made = state(ctx).providers
    if (infra.name, name) not in made:
        settings = state(ctx).loaded.settings
        context = ProviderContext(
            settings.workspace.name or workspace.name,
            workspace,
            infra.name,
            dict(getattr(settings.providers, name, {})),
        )
        made[(infra.name, name)] = get_provider(name, context)
    found: Provider = made[(infra.name, name)]
    return found


def refresh(
    ctx: typer.Context, workspace: Path, infra: Infra, found: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The plan against what each provider reports now, as Terraform refreshes its
    state: a recorded server the provider no longer has is to be created again (or,
    for a delete, is already gone); one changed there is an update from its live values."""
    refreshed = []
    for change in found:
        if change.get("taskserv") or change["action"] not in ("exists", "update", "delete"):
            refreshed.append(change)
            continue
        hostname = change["server"]
        try:
            name = infra.server(hostname).provider
        except InfraError:
            name = "local"
        try:
            live = _provider(ctx, workspace, infra, name).find_server(hostname)
        except ProviderError as exc:
            notify(f"{hostname}: cannot ask {name} how it is ({exc}); planned from the record")
            refreshed.append(change)
            continue
        if live is None:
            gone = "recorded, but the provider has no such server (drift)"
            action = "absent" if change["action"] == "delete" else "create"
            change = {"server": hostname, "action": action, "drift": gone}
        elif change["action"] != "delete":
            change = _against_live(infra, change, live.as_dict())
        refreshed.append(change)
    return refreshed


def _against_live(infra: Infra, change: dict[str, Any], live: dict[str, Any]) -> dict[str, Any]:
    """What the provider reports wins over the record: a server changed behind the
    platform's back is an update from its live values (or none, if it already matches)."""
    hostname = change["server"]
    drift = plans.server_drift(infra, hostname, live)
    if not drift:
        return {"server": hostname, "action": "exists"}
    recorded = change.get("changes") or {}
    # A field the record did not differ in was recorded as defined.
    behind = {field for field, (old, new) in drift.items() if recorded.get(field, [new])[0] != old}
    found: dict[str, Any] = {"server": hostname, "action": "update", "changes": drift}
    if behind:
        found["drift"] = (
            f"changed at the provider since it was recorded ({', '.join(sorted(behind))}) (drift)"
        )
    return found


def show_changes(
    ctx: typer.Context, workspace: Path, infra: Infra, workflow: dict[str, Any], opts: RunOptions
) -> list[dict[str, Any]]:
    found = refresh(ctx, workspace, infra, plans.changes(workspace, infra, workflow))
    if opts.machine:
        add, change, destroy = plan_summary(found)
        summary = {"add": add, "change": change, "destroy": destroy}
        data({"workflow": workflow["name"], "changes": found, "summary": summary}, opts.fmt)
    else:
        say((workflow["name"], "bold"), " (check: nothing was changed)")
        show_plan(workflow, found)
    return found


def servers_of(infra: Infra, given: list[str] | None) -> list[str]:
    """The servers named (every server of the infra when none is); each must exist."""
    names = given or [server.hostname for server in infra.servers]
    if not names:
        raise InfraError(f"infra {infra.name} defines no servers")
    for hostname in names:
        infra.server(hostname)
    return names


def confirm_destroy(
    workflow: dict[str, Any], found: list[dict[str, Any]], opts: RunOptions
) -> None:
    """Show what a destroy removes and ask for ``yes`` (``--auto-approve`` skips it)."""
    _, _, destroy = plan_summary(found)
    if opts.auto_approve or destroy == 0:
        return
    if not is_terminal(sys.stdin):
        fail(
            f"{workflow['name']} destroys {destroy} resource(s): confirm with --auto-approve "
            "(no terminal to ask on)",
            EXIT_USAGE,
        )
    if not opts.machine:
        say((workflow["name"], "bold"))
        show_plan(workflow, found)
    sys.stderr.write("Only 'yes' will be accepted to approve. Enter a value: ")
    sys.stderr.flush()
    answer = sys.stdin.readline().strip()
    if answer != "yes":
        fail("not approved: nothing was destroyed", EXIT_FAILED)


def plan_and_run(
    ctx: typer.Context,
    operation_name: str,
    build: Callable[[Path, Infra], dict[str, Any]],
    opts: RunOptions,
    *,
    destroys: bool = False,
) -> None:
    """Expand a command into its workflow (``build``), then ``--check`` it (show the
    plan) or run it where the execution mode says (a destroy asks first)."""
    workspace, infra = infra_of(ctx, opts.infra)
    try:
        workflow = build(workspace, infra)
    except (CatalogError, InfraError) as exc:
        fail(str(exc), EXIT_USAGE)
    if opts.check:
        # The plan also says what a provider would refuse on apply (the apply itself
        # leaves that to the provider, whose error the run reports).
        problems = provider_problems(ctx, workspace, infra, workflow)
        if problems:
            fail(f"infra {infra.name}: " + "; ".join(problems), EXIT_USAGE)
        show_changes(ctx, workspace, infra, workflow, opts)
        return
    if destroys:
        confirm_destroy(workflow, plans.changes(workspace, infra, workflow), opts)
    execute(ctx, operation_name, workflow, opts)


def execute(
    ctx: typer.Context, operation_name: str, workflow: dict[str, Any], opts: RunOptions
) -> None:
    """Validate ``workflow`` and run it where the execution mode says."""
    from ..workflow import PlanError, build_plan
    from ..workflow.validate import check_plan, parse_spec
    from . import dispatch
    from .direct import run_workflow_direct
    from .workflow import follow, recap

    settings = state(ctx).loaded.settings
    try:
        plan = build_plan(parse_spec(workflow))
        check_plan(plan, settings)
    except (PlanError, CatalogError) as exc:
        fail(str(exc), EXIT_USAGE)
    route = dispatch.route(
        state(ctx), operation_name, orchestrated=opts.orchestrated, direct=opts.direct
    )
    if route.client is None:
        ok = run_workflow_direct(plan, settings, echo=not opts.machine)
        if opts.machine:
            data({"mode": "direct", "workflow": workflow["name"], "completed": ok}, opts.fmt)
        if not ok:
            raise typer.Exit(EXIT_FAILED)
        return
    try:
        submitted = route.client.submit_workflow(workflow)
        workflow_id = submitted["workflow_id"]
        if not opts.machine:
            say(f"Workflow submitted: {workflow_id}")
        if not opts.follows():
            if opts.machine:
                data(submitted, opts.fmt)
            else:
                say(f"follow it: provisioning workflow monitor {workflow_id[:8]}")
            return
        final = follow(route.client, workflow_id, quiet=opts.machine)
    except ClientError as exc:
        client_failure(exc)
    if opts.machine:
        data(final, opts.fmt)
    else:
        recap(final)
    if final["status"] != "completed":
        raise typer.Exit(EXIT_FAILED)
