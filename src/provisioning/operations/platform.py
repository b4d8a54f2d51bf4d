"""Platform operations of workflow files (``target`` + ``type``) -> task runners."""

from __future__ import annotations

from pathlib import Path

from ..tasks import RunSpec
from ..taskservs import CatalogError, resolve

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


def platform_runs(
    target: str, op_type: str, params: dict[str, object]
) -> tuple[RunSpec, RunSpec | None]:
    """The runner of a platform operation and of its undo (server.create <-> server.delete)."""
    if not isinstance(params.get("workspace_dir"), str) or not isinstance(params.get("infra"), str):
        raise PlatformOpError(
            f"{target}.{op_type} needs the workspace and infra (params.workspace_dir and "
            "infra; the provisioning CLI fills them in)"
        )
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
