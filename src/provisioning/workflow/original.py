"""The original platform's batch form, translated into this platform's workflow spec.

The original's documented fields either map onto the spec here or are refused by
name (a :class:`Problem` saying what to write instead); none is dropped silently:

* ``retry_policy`` -> ``retry``; ``rollback_strategy`` -> ``rollback_enabled`` and the
  operations' default ``on_failure``;
* ``type = server_batch`` (``server_configs``), ``taskserv_batch`` (``taskservs``) and
  ``cluster_batch`` (``clusters``) -> platform operations (``target`` + ``type``);
* ``dependencies`` entries given as records (``{id, kind = "hard"}``) -> ``depends_on``;
* ``parallel = false`` -> the operation's items one after another.

Native workflows pass through unchanged. Pure: no I/O (a cluster's expansion, which
reads the infra, is handed in by the caller).
"""

from __future__ import annotations

from typing import Any

from .batches import (
    BATCH_TYPES,
    ORIGINAL_OP_FIELDS,
    BatchTranslator,
    ClusterExpander,
    Problems,
    chain,
)
from .plan import Problem

RETRY_FIELDS = ("max_attempts", "backoff", "initial_delay", "max_delay")
ROLLBACK_FIELDS = ("enabled", "on_partial_failure", "checkpoint_interval", "preserve_successful")
PARTIAL_FAILURE = {"rollback": "rollback", "continue": "continue", "fail": "fail", "stop": "fail"}
DEPENDENCY_KINDS = ("hard", "soft", "optional")


def is_original(data: Any) -> bool:
    """Whether ``data`` uses any field of the original batch form."""
    if not isinstance(data, dict):
        return False
    if "retry_policy" in data or "rollback_strategy" in data:
        return True
    for op in data.get("operations") or []:
        if not isinstance(op, dict):
            continue
        if op.get("type") in BATCH_TYPES or any(f in op for f in ORIGINAL_OP_FIELDS):
            return True
        if "retry_policy" in op:
            return True
        deps = op.get("dependencies")
        if isinstance(deps, list) and any(isinstance(d, dict) for d in deps):
            return True
    return False


def _retry(policy: Any, where: str, problems: Problems) -> dict[str, Any] | None:
    if not isinstance(policy, dict):
        problems.add(where, "expected a record {max_attempts, backoff, initial_delay, max_delay}")
        return None
    unknown = [k for k in policy if k not in RETRY_FIELDS]
    for key in unknown:
        problems.add(
            f"{where}.{key}",
            f"not a field of the retry policy (known: {', '.join(RETRY_FIELDS)})",
        )
    return {k: v for k, v in policy.items() if k in RETRY_FIELDS}


def _rollback(
    strategy: Any, data: dict[str, Any], problems: Problems
) -> tuple[dict[str, Any], str | None]:
    """The workflow fields ``rollback_strategy`` sets, and the default ``on_failure``."""
    where = "rollback_strategy"
    if not isinstance(strategy, dict):
        problems.add(where, f"expected a record with {', '.join(ROLLBACK_FIELDS)}")
        return {}, None
    for key in strategy:
        if key not in ROLLBACK_FIELDS:
            problems.add(f"{where}.{key}", f"unknown field (known: {', '.join(ROLLBACK_FIELDS)})")
    fields: dict[str, Any] = {}
    enabled = strategy.get("enabled", True)
    if not isinstance(enabled, bool):
        problems.add(f"{where}.enabled", "expected true or false")
    elif "rollback_enabled" in data and data["rollback_enabled"] != enabled:
        problems.add(f"{where}.enabled", "contradicts rollback_enabled; give one of them")
    else:
        fields["rollback_enabled"] = enabled
    interval = strategy.get("checkpoint_interval")
    # Every finished step is checkpointed in the transaction that records it, so any
    # interval is met; a value that is no interval is still refused.
    if interval is not None and (
        isinstance(interval, bool) or not isinstance(interval, int | float) or interval <= 0
    ):
        problems.add(f"{where}.checkpoint_interval", "expected a number of seconds above 0")
    preserve = strategy.get("preserve_successful", False)
    if not isinstance(preserve, bool):
        problems.add(f"{where}.preserve_successful", "expected true or false")
        preserve = False
    default: str | None = None
    partial = strategy.get("on_partial_failure")
    if partial is not None:
        if partial not in PARTIAL_FAILURE:
            problems.add(
                f"{where}.on_partial_failure",
                f"expected one of: {', '.join(PARTIAL_FAILURE)} (got {partial!r})",
            )
        else:
            default = PARTIAL_FAILURE[partial]
    if preserve:
        if default == "rollback":
            problems.add(
                f"{where}.preserve_successful",
                "true keeps what completed, which contradicts on_partial_failure = rollback",
            )
        for index, op in enumerate(data.get("operations") or []):
            if isinstance(op, dict) and op.get("on_failure") == "rollback":
                problems.add(
                    f"operations[{index}].on_failure",
                    "rollback contradicts rollback_strategy.preserve_successful = true",
                    str(op.get("id")),
                )
        default = default or "continue"
    if fields.get("rollback_enabled") is False and default == "rollback":
        problems.add(f"{where}.on_partial_failure", "rollback needs enabled = true")
    return fields, default


def _dependencies(op: dict[str, Any], where: str, problems: Problems) -> list[str]:
    given = op.get("depends_on", [])
    if "dependencies" in op:
        if "depends_on" in op:
            problems.add(f"{where}.dependencies", "give dependencies or depends_on, not both")
        given = op["dependencies"]
    if not isinstance(given, list):
        problems.add(f"{where}.dependencies", "expected a list of operation ids")
        return []
    ids: list[str] = []
    for number, dep in enumerate(given):
        at = f"{where}.dependencies[{number}]"
        if isinstance(dep, str):
            ids.append(dep)
            continue
        if not isinstance(dep, dict):
            problems.add(at, "expected an operation id or {id, kind}")
            continue
        for key in dep:
            if key not in ("id", "kind"):
                problems.add(f"{at}.{key}", "unknown field (known: id, kind)")
        kind = dep.get("kind", "hard")
        if kind not in DEPENDENCY_KINDS:
            problems.add(f"{at}.kind", f"expected one of: {', '.join(DEPENDENCY_KINDS)}")
        elif kind != "hard":
            problems.add(
                f"{at}.kind",
                f"{kind!r} is not supported: an operation starts only when what it depends "
                "on completed ('hard'); use kind = 'hard', or drop the dependency and give "
                "the dependency on_failure = 'continue'",
            )
        if not isinstance(dep.get("id"), str):
            problems.add(f"{at}.id", "expected the id of an operation")
        else:
            ids.append(dep["id"])
    return ids


class _Translator(BatchTranslator):
    """One workflow's operations: their original fields, then their batch type."""

    def operation(
        self, index: int, op: dict[str, Any], default_failure: str | None
    ) -> list[dict[str, Any]]:
        where = f"operations[{index}]"
        op_id = str(op.get("id"))
        before = len(self.problems.found)
        native = {
            k: v
            for k, v in op.items()
            if k not in (*ORIGINAL_OP_FIELDS, "dependencies", "retry_policy")
        }
        native["depends_on"] = _dependencies(op, where, self.problems)
        if "retry_policy" in op:
            if "retry" in op:
                self.problems.add(
                    f"{where}.retry_policy", "give retry or retry_policy, not both", op_id
                )
            native["retry"] = _retry(op["retry_policy"], f"{where}.retry_policy", self.problems)
        if default_failure is not None and "on_failure" not in op:
            native["on_failure"] = default_failure
        parallel = op.get("parallel", True)
        if not isinstance(parallel, bool):
            self.problems.add(f"{where}.parallel", "expected true or false", op_id)
        kind = op.get("type")
        if kind not in BATCH_TYPES:
            for key in ("server_configs", "taskservs", "clusters", "servers"):
                if key in op:
                    self.problems.add(
                        f"{where}.{key}",
                        f"only for type = {' | '.join(BATCH_TYPES)} (this is {kind!r})",
                        op_id,
                    )
            if len(self.problems.found) > before:
                return []
            items = native.get("items")
            if not isinstance(items, list):
                return [native]
            chained = chain({**native, "parallel": parallel}, items)
            return [{k: v for k, v in o.items() if k != "parallel"} for o in chained]
        if "target" in op:
            self.problems.add(f"{where}.target", f"type = {kind} names its target already", op_id)
        unexpected = {
            "server_batch": ("taskservs", "clusters", "servers", "items"),
            "taskserv_batch": ("server_configs", "clusters", "items"),
            "cluster_batch": ("server_configs", "taskservs", "servers", "items"),
        }[kind]
        for key in unexpected:
            if key in op:
                self.problems.add(f"{where}.{key}", f"not a field of {kind}", op_id)
        if kind == "server_batch":
            ops = self.server_batch(op, native, where)
        elif kind == "taskserv_batch":
            ops = self.taskserv_batch(op, native, where)
        else:
            ops = self.cluster_batch(op, native, where)
        if len(self.problems.found) > before:
            return []
        return ops


def from_original(
    data: Any, expand_cluster: ClusterExpander | None = None
) -> tuple[Any, list[Problem]]:
    """``data`` in this platform's spec, and every problem of the original form found."""
    if not is_original(data):
        return data, []
    translator = _Translator(expand_cluster)
    spec = {k: v for k, v in data.items() if k not in ("retry_policy", "rollback_strategy")}
    default_failure: str | None = None
    if "retry_policy" in data:
        if "retry" in data:
            translator.problems.add("retry_policy", "give retry or retry_policy, not both")
        spec["retry"] = _retry(data["retry_policy"], "retry_policy", translator.problems)
    if "rollback_strategy" in data:
        fields, default_failure = _rollback(data["rollback_strategy"], data, translator.problems)
        spec.update(fields)
    operations: list[Any] = []
    for index, op in enumerate(data.get("operations") or []):
        if isinstance(op, dict):
            operations += translator.operation(index, op, default_failure)
        else:
            operations.append(op)
    spec["operations"] = operations
    return spec, translator.problems.found
