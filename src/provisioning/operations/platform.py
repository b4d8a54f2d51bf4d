"""Platform operations of workflow files (``target`` + ``type``) -> task runners."""

from __future__ import annotations

from pathlib import Path

from ..providers.base import HOSTNAME_RE
from ..tasks import RunSpec
from ..taskservs import CatalogError, resolve
from ..workflow.spec import OperationSpec, WorkflowSpec

HANDLERS = "provisioning.operations.handlers"


class PlatformOpError(ValueError):
    """A platform operation that cannot be turned into tasks; the message says why."""


def _python(function: str) -> RunSpec:
    return RunSpec.model_validate({"python": {"module": HANDLERS, "function": function}})


def _taskserv(params: dict[str, object], function: str) -> RunSpec:
    name = params.get("taskserv")
    if not isinstance(name, str):
        raise PlatformOpError("a taskserv operation needs params.taskserv (its name)")
    workspace = params.get("workspace_dir")
    try:
        definition = resolve(name, Path(workspace) if isinstance(workspace, str) else None)
    except CatalogError as exc:
        raise PlatformOpError(str(exc)) from None
    return RunSpec.model_validate(
        {
            "nushell": {
                "module": definition.module,
                "function": function,
                "lib": str(definition.library),
            }
        }
    )


def with_taskserv_dependencies(spec: WorkflowSpec) -> WorkflowSpec:
    """A workflow file's ``taskserv.create`` operations pull in what their taskserv
    depends on, as ``provisioning taskserv create`` does: a dependency another
    operation installs becomes an edge to it; one nobody installs becomes an
    operation of its own (``<op>-<dependency>``, same servers), run first."""
    ops = list(spec.operations)
    installs = {
        str(op.params["taskserv"]): op.id
        for op in ops
        if op.operation_name == "taskserv.create" and isinstance(op.params.get("taskserv"), str)
    }
    if not installs:
        return spec
    taken = {op.id for op in ops}
    out: list[OperationSpec] = []
    pending = list(ops)
    while pending:
        op = pending.pop(0)
        name = op.params.get("taskserv")
        workspace = op.params.get("workspace_dir")
        if op.operation_name != "taskserv.create" or not isinstance(name, str):
            out.append(op)
            continue
        try:
            depends = resolve(name, Path(workspace) if isinstance(workspace, str) else None)
        except CatalogError:
            out.append(op)  # platform_runs names the problem
            continue
        edges = list(op.depends_on)
        for dependency in depends.depends_on:
            if dependency not in installs:
                new_id = f"{op.id}-{dependency}"
                while new_id in taken:
                    new_id += "-dep"
                taken.add(new_id)
                installs[dependency] = new_id
                params = {k: v for k, v in op.params.items() if k not in ("version", "settings")}
                pending.append(
                    op.model_copy(
                        update={
                            "id": new_id,
                            "description": f"{dependency} (needed by {name})",
                            "params": {**params, "taskserv": dependency},
                            "depends_on": list(op.depends_on),
                        }
                    )
                )
            if installs[dependency] not in edges and installs[dependency] != op.id:
                edges.append(installs[dependency])
        out.append(op.model_copy(update={"depends_on": edges}))
    return spec.model_copy(update={"operations": out})


def _label(value: object, what: str) -> None:
    if not isinstance(value, str) or not HOSTNAME_RE.fullmatch(value):
        raise PlatformOpError(
            f"{what} {value!r} is not a name (RFC 1123: lowercase letters, digits and '-', "
            "1 to 63 characters)"
        )


def check_platform_params(
    target: str, op_type: str, params: dict[str, object], items: list[object] | None = None
) -> None:
    """What every platform operation's handler relies on, checked before it is queued:
    a workspace folder, an infra name, server names (each item, or ``hostname``)."""
    workspace = params.get("workspace_dir")
    if not isinstance(workspace, str) or not isinstance(params.get("infra"), str):
        raise PlatformOpError(
            f"{target}.{op_type} needs the workspace and infra (params.workspace_dir and "
            "infra; the provisioning CLI fills them in)"
        )
    _label(params["infra"], "infra")
    folder = Path(workspace)
    if "\0" in workspace or not folder.is_absolute() or ".." in folder.parts:
        raise PlatformOpError(f"params.workspace_dir {workspace!r} is not an absolute folder path")
    if not (folder / "config" / "provisioning.toml").is_file():
        raise PlatformOpError(f"params.workspace_dir {workspace} is not a workspace folder")
    if not (folder / "infra" / str(params["infra"])).is_dir():
        raise PlatformOpError(
            f"infra {params['infra']!r}: no folder infra/{params['infra']} in {workspace}"
        )
    if target in ("server", "taskserv"):
        names = items if items is not None else [params.get("hostname")]
        for name in names:
            # An item is a hostname, or (the original's server_configs) a server record.
            _label(name.get("hostname") if isinstance(name, dict) else name, "server")


def platform_runs(
    target: str, op_type: str, params: dict[str, object], items: list[object] | None = None
) -> tuple[RunSpec, RunSpec | None]:
    """The runner of a platform operation and of its undo (server.create <-> server.delete)."""
    check_platform_params(target, op_type, params, items)
    key = f"{target}.{op_type}"
    if key == "server.create":
        return _python("server_create"), _python("server_delete")
    if key == "server.delete":
        return _python("server_delete"), None
    if key == "server.check":
        return _python("server_check"), None
    if key == "taskserv.create":
        return _taskserv(params, "install"), _taskserv(params, "remove")
    if key == "taskserv.delete":
        return _taskserv(params, "remove"), None
    if target == "cluster":
        raise PlatformOpError(
            f"{key}: a cluster expands into a workflow of server and taskserv operations; "
            "use `provisioning cluster create|delete`"
        )
    raise PlatformOpError(f"{key} is not an operation of this platform")
