"""The original's batch operations (``server_batch``, ``taskserv_batch``,
``cluster_batch``) as this platform's platform operations; see ``original.py``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .plan import Problem

BATCH_TYPES = ("server_batch", "taskserv_batch", "cluster_batch")
SERVER_FIELDS = (
    "name",
    "hostname",
    "provider",
    "plan",
    "cores",
    "memory_mb",
    "storage_gb",
    "zone",
    "image",
    "login_user",
    "ssh_keys",
    "labels",
    "taskservs",
)
# Fields only the original's operations have; the rest are the spec's own.
ORIGINAL_OP_FIELDS = ("server_configs", "taskservs", "clusters", "servers", "parallel")

ClusterExpander = Callable[[dict[str, Any], str], list[dict[str, Any]]]


class Problems:
    """Every problem found, in order."""

    def __init__(self) -> None:
        self.found: list[Problem] = []

    def add(self, where: str, message: str, op_id: str | None = None) -> None:
        self.found.append(Problem(where, message, op_id))


def server_items(op: dict[str, Any], where: str, problems: Problems) -> list[dict[str, Any]]:
    configs = op.get("server_configs")
    if not isinstance(configs, list) or not configs:
        problems.add(f"{where}.server_configs", "server_batch needs a non-empty list of servers")
        return []
    items = []
    for number, config in enumerate(configs):
        at = f"{where}.server_configs[{number}]"
        if not isinstance(config, dict):
            problems.add(at, "expected a server record {name, plan, zone, ...}")
            continue
        for key in config:
            if key not in SERVER_FIELDS:
                problems.add(
                    f"{at}.{key}", f"unknown server field (known: {', '.join(SERVER_FIELDS)})"
                )
        item = {k: v for k, v in config.items() if k in SERVER_FIELDS and k != "name"}
        name = config.get("hostname", config.get("name"))
        if "name" in config and "hostname" in config and config["name"] != config["hostname"]:
            problems.add(f"{at}.name", "contradicts hostname; give one of them")
        if not isinstance(name, str):
            problems.add(f"{at}.name", "every server needs its name (hostname)")
            continue
        item["hostname"] = name
        if "provider" in op:
            if "provider" in config and config["provider"] != op["provider"]:
                problems.add(
                    f"{at}.provider", f"contradicts the operation's provider {op['provider']!r}"
                )
            item["provider"] = op["provider"]
        items.append(item)
    return items


def chain(op: dict[str, Any], items: list[Any]) -> list[dict[str, Any]]:
    """``parallel = false``: one operation per item, each after the previous; the last
    keeps the operation's id (what depends on it waits for all)."""
    if op.get("parallel", True) or len(items) < 2:
        return [{**op, "items": items}]
    ops = []
    previous: list[str] = list(op.get("depends_on", []))
    for number, item in enumerate(items):
        last = number == len(items) - 1
        op_id = op["id"] if last else f"{op['id']}.{number + 1}"
        ops.append({**op, "id": op_id, "items": [item], "depends_on": previous})
        previous = [op_id]
    return ops


class BatchTranslator:
    """The batch operations of one workflow (a taskserv_batch finds the servers of the
    server_batch operations translated before it)."""

    def __init__(self, expand_cluster: ClusterExpander | None) -> None:
        self.expand_cluster = expand_cluster
        self.problems = Problems()
        self.servers_of: dict[str, list[dict[str, Any]]] = {}

    def server_batch(
        self, op: dict[str, Any], native: dict[str, Any], where: str
    ) -> list[dict[str, Any]]:
        items = server_items(op, where, self.problems)
        self.servers_of[str(op.get("id"))] = items
        base = {
            **native,
            "target": "server",
            "type": "create",
            "parallel": op.get("parallel", True),
        }
        base.pop("provider", None)
        return [{k: v for k, v in o.items() if k != "parallel"} for o in chain(base, items)]

    def taskserv_batch(
        self, op: dict[str, Any], native: dict[str, Any], where: str
    ) -> list[dict[str, Any]]:
        names = op.get("taskservs")
        if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
            self.problems.add(
                f"{where}.taskservs",
                "taskserv_batch needs a non-empty list of taskserv names",
                str(op.get("id")),
            )
            return []
        hostnames = self.targets(op, native, where)
        if not hostnames:
            return []
        ops: list[dict[str, Any]] = []
        previous = list(native["depends_on"])
        base = {k: v for k, v in native.items() if k not in ("provider", "type", "id")}
        # Listed taskservs install in the listed order; each fans out over the servers.
        for number, name in enumerate(names):
            last = number == len(names) - 1
            op_id = str(op["id"]) if last else f"{op['id']}.{name}"
            one = {
                **base,
                "id": op_id,
                "target": "taskserv",
                "type": "create",
                "params": {**native.get("params", {}), "taskserv": name},
                "depends_on": previous,
                "parallel": op.get("parallel", True),
            }
            chained = chain(one, hostnames)
            ops += [{k: v for k, v in o.items() if k != "parallel"} for o in chained]
            previous = [chained[-1]["id"]]
        if len({o["id"] for o in ops}) != len(ops):
            self.problems.add(f"{where}.taskservs", "lists a taskserv twice", str(op.get("id")))
        return ops

    def targets(self, op: dict[str, Any], native: dict[str, Any], where: str) -> list[str]:
        """The servers a taskserv_batch installs on: ``servers``, else those of the
        server_batch operations it depends on (of ``provider`` when given)."""
        op_id = str(op.get("id"))
        if "servers" in op:
            given = op["servers"]
            if (
                not isinstance(given, list)
                or not given
                or not all(isinstance(h, str) for h in given)
            ):
                self.problems.add(
                    f"{where}.servers", "expected a non-empty list of hostnames", op_id
                )
                return []
            return list(given)
        found = [s for dep in native["depends_on"] for s in self.servers_of.get(dep, [])]
        if "provider" in op:
            found = [s for s in found if s.get("provider") == op["provider"]]
        if not found:
            which = f" of provider {op['provider']!r}" if "provider" in op else ""
            self.problems.add(
                where,
                f"no servers{which} to install on: name them in servers = [...], or depend on "
                "the server_batch operation that creates them",
                op_id,
            )
        return [s["hostname"] for s in found]

    def cluster_batch(
        self, op: dict[str, Any], native: dict[str, Any], where: str
    ) -> list[dict[str, Any]]:
        op_id = str(op.get("id"))
        names = op.get("clusters")
        if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
            self.problems.add(
                f"{where}.clusters", "cluster_batch needs a non-empty list of cluster names", op_id
            )
            return []
        if self.expand_cluster is None:
            self.problems.add(
                where, "cluster_batch needs the workspace's infra to expand its clusters", op_id
            )
            return []
        ops: list[dict[str, Any]] = []
        sinks: list[str] = []
        for name in names:
            try:
                expanded = self.expand_cluster(native, name)
            except ValueError as exc:
                self.problems.add(f"{where}.clusters", str(exc), op_id)
                return []
            inner = {o["id"] for o in expanded}
            prefix = f"{op_id}.{name}."
            depended = {d for o in expanded for d in o.get("depends_on", [])}
            for sub in expanded:
                deps = [prefix + d for d in sub.get("depends_on", []) if d in inner]
                if not sub.get("depends_on"):
                    deps += native["depends_on"]
                ops.append(
                    {
                        **sub,
                        "id": prefix + sub["id"],
                        "depends_on": deps,
                        "on_failure": native.get("on_failure", "fail"),
                    }
                )
            sinks += [prefix + o["id"] for o in expanded if o["id"] not in depended]
        # The batch's own id: a step that completes when every cluster is done.
        ops.append(
            {
                "id": op_id,
                "depends_on": sinks,
                "run": {"command": ["true"]},
                "description": f"clusters {', '.join(names)} done",
            }
        )
        return ops
