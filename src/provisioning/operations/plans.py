"""Server, taskserv and cluster commands expanded into workflows (the seed's
Example 3: servers in parallel, then taskservs in dependency order)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..infra import Infra, InfraError
from ..infra.state import read_state
from ..taskservs import TaskservDef, install_order


def _base(workspace_dir: Path) -> dict[str, Any]:
    return {"workspace_dir": str(workspace_dir)}


def _taskserv_ops(
    workspace_dir: Path, infra: Infra, wanted: dict[str, list[str]], after: list[str]
) -> list[dict[str, Any]]:
    """One operation per taskserv, fanning out over the servers that need it; each
    waits for ``after`` and for the taskservs it depends on."""
    order: list[TaskservDef] = []
    needs: dict[str, list[str]] = {}
    for hostname, names in wanted.items():
        for definition in install_order(names, workspace_dir, infra):
            if definition.name not in needs:
                needs[definition.name] = []
                order.append(definition)
            if hostname not in needs[definition.name]:
                needs[definition.name].append(hostname)
    full = install_order([d.name for d in order], workspace_dir, infra)
    ops = []
    for definition in full:
        ops.append(
            {
                "id": f"taskserv-{definition.name}",
                "description": f"{definition.name} {definition.version}",
                "target": "taskserv",
                "type": "create",
                "infra": infra.name,
                "items": needs[definition.name],
                # The resolved definition travels with the task: its handler need not
                # evaluate the infra again.
                "params": {
                    **_base(workspace_dir),
                    "taskserv": definition.name,
                    "version": definition.version,
                    "settings": definition.settings,
                    # Every server getting it: a clustered taskserv (etcd) knows its peers.
                    "peers": needs[definition.name],
                    "ssh": {
                        h: infra.server(h).ssh.model_dump(exclude_none=True)
                        for h in needs[definition.name]
                    },
                },
                "depends_on": [*after, *(f"taskserv-{d}" for d in definition.depends_on)],
            }
        )
    return ops


def create_servers(
    workspace_dir: Path, infra: Infra, hostnames: list[str], *, with_taskservs: bool = True
) -> dict[str, Any]:
    """Create ``hostnames`` (in parallel), then install their taskservs."""
    servers = [infra.server(h) for h in hostnames]
    ops: list[dict[str, Any]] = [
        {
            "id": "servers",
            "description": f"create {len(servers)} server(s)",
            "target": "server",
            "type": "create",
            "infra": infra.name,
            "items": [s.hostname for s in servers],
            "params": _base(workspace_dir),
        }
    ]
    if with_taskservs:
        wanted = {s.hostname: list(s.taskservs) for s in servers if s.taskservs}
        ops += _taskserv_ops(workspace_dir, infra, wanted, ["servers"])
    return _workflow(f"server-create-{infra.name}", ops)


def delete_servers(workspace_dir: Path, infra: Infra, hostnames: list[str]) -> dict[str, Any]:
    """Delete ``hostnames`` in parallel (stopping what runs on them)."""
    op = {
        "id": "servers",
        "description": f"delete {len(hostnames)} server(s)",
        "target": "server",
        "type": "delete",
        "infra": infra.name,
        "items": hostnames,
        "params": _base(workspace_dir),
    }
    return _workflow(f"server-delete-{infra.name}", [op], rollback=False)


def create_taskserv(
    workspace_dir: Path, infra: Infra, name: str, hostnames: list[str]
) -> dict[str, Any]:
    """Install ``name`` (and what it depends on, each once) on ``hostnames``."""
    ops = _taskserv_ops(workspace_dir, infra, {h: [name] for h in hostnames}, [])
    return _workflow(f"taskserv-create-{name}", ops)


def delete_taskserv(
    workspace_dir: Path, infra: Infra, name: str, hostnames: list[str]
) -> dict[str, Any]:
    op = {
        "id": f"taskserv-{name}",
        "target": "taskserv",
        "type": "delete",
        "infra": infra.name,
        "items": hostnames,
        "params": {
            **_base(workspace_dir),
            "taskserv": name,
            "ssh": {h: infra.server(h).ssh.model_dump(exclude_none=True) for h in hostnames},
        },
    }
    return _workflow(f"taskserv-delete-{name}", [op], rollback=False)


def create_cluster(workspace_dir: Path, infra: Infra, name: str) -> dict[str, Any]:
    """The cluster's servers in parallel, then every taskserv in dependency order."""
    cluster = infra.cluster(name)
    servers = [infra.server(h) for h in cluster.servers]
    ops: list[dict[str, Any]] = [
        {
            "id": "servers",
            "description": f"cluster {name}: {len(servers)} server(s)",
            "target": "server",
            "type": "create",
            "infra": infra.name,
            "items": cluster.servers,
            "params": _base(workspace_dir),
        }
    ]
    wanted = {s.hostname: [*cluster.taskservs, *s.taskservs] for s in servers}
    ops += _taskserv_ops(workspace_dir, infra, wanted, ["servers"])
    return _workflow(f"cluster-create-{name}", ops)


def delete_cluster(workspace_dir: Path, infra: Infra, name: str) -> dict[str, Any]:
    cluster = infra.cluster(name)
    workflow = delete_servers(workspace_dir, infra, cluster.servers)
    workflow["name"] = f"cluster-delete-{name}"
    return workflow


def _workflow(name: str, ops: list[dict[str, Any]], *, rollback: bool = True) -> dict[str, Any]:
    return {
        "name": name,
        "parallel_limit": 10,
        "rollback_enabled": rollback,
        "retry": {"max_attempts": 2, "backoff": "exponential", "initial_delay": 1},
        "operations": ops,
    }


# What a server's record must match of its definition, else the plan shows `~ update`.
SERVER_FIELDS = ("plan", "cores", "memory_mb", "storage_gb", "zone")


def changes(workspace_dir: Path, infra: Infra, workflow: dict[str, Any]) -> list[dict[str, Any]]:
    """What running ``workflow`` would change, from the recorded state (``--check``);
    an ``update`` names each differing field as ``[recorded, defined]``."""
    servers = read_state(workspace_dir, infra.name)["servers"]
    found = []
    for op in workflow["operations"]:
        for item in op.get("items", []):
            recorded = servers.get(item)
            if op["target"] == "server":
                exists = recorded is not None
                action = {
                    "create": "exists" if exists else "create",
                    "delete": "delete" if exists else "absent",
                }[op["type"]]
                change: dict[str, Any] = {"server": item, "action": action}
                if action == "exists" and recorded is not None:
                    drift = server_drift(infra, item, recorded)
                    if drift:
                        change = {**change, "action": "update", "changes": drift}
                found.append(change)
            else:
                taskserv = op["params"]["taskserv"]
                installed = (recorded or {}).get("taskservs", {}).get(taskserv)
                if op["type"] == "create":
                    action = "installed" if installed else "install"
                else:
                    action = "remove" if installed else "absent"
                change = {"server": item, "taskserv": taskserv, "action": action}
                if action == "installed" and isinstance(installed, dict):
                    drift = _taskserv_drift(op["params"], installed)
                    if drift:
                        change = {**change, "action": "update", "changes": drift}
                found.append(change)
    return found


def server_drift(infra: Infra, hostname: str, recorded: dict[str, Any]) -> dict[str, list[Any]]:
    try:
        defined = infra.server(hostname)
    except InfraError:
        return {}
    drift = {}
    for name in SERVER_FIELDS:
        want = getattr(defined, name, None)
        have = recorded.get(name)
        if want is not None and have is not None and want != have:
            drift[name] = [have, want]
    return drift


def _taskserv_drift(wanted: dict[str, Any], installed: dict[str, Any]) -> dict[str, list[Any]]:
    """The version and each setting that differ between the definition and what was
    installed (a record made before settings were recorded compares its version only)."""
    drift: dict[str, list[Any]] = {}
    had, want = installed.get("version"), wanted.get("version")
    if had and want and had != want:
        drift["version"] = [had, want]
    before, after = installed.get("settings"), wanted.get("settings")
    if isinstance(before, dict) and isinstance(after, dict):
        for key in sorted(set(before) | set(after)):
            if before.get(key) != after.get(key):
                drift[f"settings.{key}"] = [before.get(key), after.get(key)]
    return drift
