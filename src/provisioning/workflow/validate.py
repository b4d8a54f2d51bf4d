"""Validating a workflow before anything is queued (shared by the CLI and the
daemon): the spec's shape, the DAG, and that every runner exists."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..config import Settings
from ..execution.runners import RunnerError, check_runner
from ..operations.platform import PlatformOpError, platform_runs, with_taskserv_dependencies
from ..tasks import RunSpec
from .original import from_original
from .plan import Plan, PlanError, Problem
from .spec import OperationSpec, WorkflowSpec


def _where(loc: tuple[Any, ...]) -> str:
    """``operations[2].on_failure``: the notation of every other problem."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "workflow"


def validation_problems(exc: ValidationError, data: Any = None) -> list[Problem]:
    problems = []
    for error in exc.errors():
        loc = tuple(error["loc"])
        op_id = None
        if len(loc) >= 2 and loc[0] == "operations" and isinstance(loc[1], int):
            try:
                op_id = str(data["operations"][loc[1]]["id"])
            except (KeyError, IndexError, TypeError):
                op_id = None
        message = str(error["msg"]).removeprefix("Value error, ")
        problems.append(Problem(_where(loc), message, op_id))
    return problems


def expand_cluster(op: dict[str, Any], name: str) -> list[dict[str, Any]]:
    """A ``cluster_batch``'s cluster as the operations ``cluster create`` runs."""
    from ..infra import InfraError, load_infra
    from ..operations import plans
    from ..taskservs import CatalogError

    params = op.get("params") or {}
    workspace, infra = params.get("workspace_dir"), op.get("infra")
    if not isinstance(workspace, str) or not isinstance(infra, str):
        raise ValueError(
            "a cluster needs the workspace and infra (params.workspace_dir and infra; the "
            "provisioning CLI fills them in)"
        )
    try:
        loaded = load_infra(Path(workspace), infra)
        operations: list[dict[str, Any]] = plans.create_cluster(Path(workspace), loaded, name)[
            "operations"
        ]
    except (InfraError, CatalogError) as exc:
        raise ValueError(str(exc)) from None
    return operations


def parse_spec(data: Any) -> WorkflowSpec:
    """The spec from decoded JSON (this platform's form or the original's batch form);
    raises :class:`PlanError` listing every problem."""
    data, problems = from_original(data, expand_cluster)
    if problems:
        raise PlanError(problems)
    try:
        spec = WorkflowSpec.model_validate(data)
    except ValidationError as exc:
        raise PlanError(validation_problems(exc, data)) from None
    return with_taskserv_dependencies(spec)


def resolve_run(op: OperationSpec) -> tuple[RunSpec, RunSpec | None]:
    """The runner (and undo runner) of an operation; an explicit ``undo`` wins."""
    if op.run is not None:
        return op.run, op.undo
    assert op.target is not None and op.type is not None
    try:
        run, undo = platform_runs(op.target.value, op.type.value, op_params(op), op.items)
    except PlatformOpError as exc:
        raise RunnerError(str(exc)) from None
    return run, op.undo or undo


def op_params(op: OperationSpec) -> dict[str, Any]:
    """An operation's parameters, with its ``infra`` (platform operations need it)."""
    return {**op.params, "infra": op.infra} if op.infra is not None else dict(op.params)


def check_plan(plan: Plan, settings: Settings) -> None:
    """Every runner and undo must exist before anything is queued."""
    problems: list[Problem] = []
    wanted = plan.spec.storage_backend
    if wanted is not None:
        # The original's workflows name the store; it is the orchestrator's to choose.
        aliases = {"filesystem": "sqlite", "surrealdb-embedded": "surrealdb"}
        aliases["surrealdb-server"] = "surrealdb"
        have = settings.storage.backend.value
        if aliases.get(wanted, wanted) != have:
            problems.append(
                Problem(
                    "storage_backend",
                    f"this orchestrator stores in {have}, not {wanted}: remove storage_backend "
                    f"or start the orchestrator with --storage-type {wanted}",
                )
            )
    index_of = {op.id: i for i, op in enumerate(plan.spec.operations)}
    for step in plan.steps:
        where = f"operations[{index_of[step.id]}]"
        try:
            run, undo = resolve_run(step.op)
        except RunnerError as exc:
            problems.append(Problem(where, str(exc), step.id))
            continue
        for label, spec in (("run", run), ("undo", undo)):
            if spec is None:
                continue
            try:
                check_runner(spec, settings)
            except RunnerError as exc:
                problems.append(Problem(f"{where}.{label}", str(exc).split(": ", 1)[-1], step.id))
    if problems:
        raise PlanError(problems)
