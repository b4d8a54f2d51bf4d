"""The Nickel contracts shipped in ``schemas/workflow.ncl`` and the server-side
validation (``parse_spec`` + ``build_plan``) accept and reject the same workflows.

Each example is written as a Nickel file and evaluated under the contracts (the
loader's bounded worker process: no daemon), and the same data is validated the way
the orchestrator validates a submission. Both must agree with the expected verdict.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from provisioning.orchestrator.engine import parse_spec
from provisioning.schemas.loader import LoadError, evaluate_nickel
from provisioning.workflow import PlanError, build_plan
from tests.acceptance.workflow_helpers import to_nickel

LAX_SERVER = (
    "BUG: the server-side spec is validated in pydantic's lax mode and coerces values the "
    "Nickel contract rejects (parallel_limit '5' or true -> int, rollback_enabled 'yes' -> "
    "True): workflow/spec.py WorkflowSpec/OperationSpec (and RetryPolicy, RunSpec in "
    "tasks/spec.py, tasks/retry.py) need strict numbers and booleans"
)
NICKEL_LAX = (
    "BUG: schemas/workflow.ncl lacks a check the server makes (non-empty operations, "
    "items and command, non-empty argv strings, unique depends_on, Nushell module/function "
    "patterns, on_failure = rollback needs rollback_enabled): such a file passes the "
    "contracts and is only rejected by the server-side check after them"
)


def operation(**fields: Any) -> dict[str, Any]:
    return {"id": "a", "run": {"command": ["true"]}, **fields}


def flow(**fields: Any) -> dict[str, Any]:
    return {"name": "w", "operations": [operation()], **fields}


def one_op(**fields: Any) -> dict[str, Any]:
    return flow(operations=[operation(**fields)])


FULL: dict[str, Any] = {
    "name": "full",
    "version": "2.1.0",
    "description": "every field once",
    "parallel_limit": 3,
    "priority": "high",
    "retry": {"max_attempts": 2, "backoff": "linear", "initial_delay": 0.5, "max_delay": 10},
    "rollback_enabled": True,
    "storage_backend": "filesystem",
    "logging": {"level": "info"},
    "operations": [
        {
            "id": "net",
            "description": "the network",
            "run": {"nushell": {"module": "infra/net.nu", "function": "create-net"}},
            "params": {"cidr": "10.0.0.0/24", "tags": ["a", "b"]},
            "timeout": 60,
            "retry": {"max_attempts": 1},
            "priority": "critical",
            "on_failure": "rollback",
            "undo": {"nushell": {"module": "infra/net.nu", "function": "delete-net"}},
        },
        {
            "id": "servers",
            "depends_on": ["net"],
            "target": "server",
            "type": "create",
            "infra": "prod",
            "provider": "local",
            "items": ["web-1", "web-2"],
            "on_failure": "continue",
        },
        {
            "id": "check.1",
            "dependencies": ["servers"],
            "run": {"python": {"module": "checks.http", "function": "ping"}},
            "on_failure": "fail",
            "undo": {"command": ["echo", "undo"]},
        },
    ],
}

EXAMPLES: list[Any] = [
    pytest.param(flow(), True, id="valid-minimal"),
    pytest.param(FULL, True, id="valid-full"),
    pytest.param(flow(name=""), False, id="name-empty"),
    pytest.param(flow(parallel_limit=0), False, id="parallel_limit-0"),
    pytest.param(flow(priority="urgent"), False, id="priority-unknown"),
    pytest.param(flow(retry={"max_attempts": 0}), False, id="retry-max_attempts-0"),
    pytest.param(flow(parallelism=3), False, id="unknown-field"),
    pytest.param(one_op(id="-a"), False, id="id-pattern"),
    pytest.param(one_op(on_failure="explode"), False, id="on_failure-unknown"),
    pytest.param(one_op(timeout=0), False, id="timeout-0"),
    pytest.param(one_op(target="server", type="create"), False, id="run-and-target"),
    pytest.param(
        one_op(run={"command": ["true"], "python": {"module": "m", "function": "f"}}),
        False,
        id="two-runners",
    ),
    pytest.param(one_op(undo={"command": ["true"], "shell": True}), False, id="undo-unknown-field"),
    pytest.param(
        flow(parallel_limit="5"),
        False,
        id="parallel_limit-string",
    ),
    pytest.param(
        flow(rollback_enabled="yes"),
        False,
        id="rollback_enabled-string",
    ),
    pytest.param(
        flow(operations=[]),
        False,
        id="operations-empty",
    ),
    pytest.param(
        flow(operations=[operation(), operation(id="b", depends_on=["a", "a"])]),
        False,
        id="depends_on-twice",
    ),
    pytest.param(
        one_op(run={"command": []}),
        False,
        id="command-empty",
    ),
    pytest.param(
        one_op(run={"nushell": {"module": "../outside.nu", "function": "go"}}),
        False,
        id="nushell-module-outside-the-library",
    ),
    pytest.param(
        one_op(items=[]),
        False,
        id="items-empty",
    ),
    pytest.param(
        flow(rollback_enabled=False, operations=[operation(on_failure="rollback")]),
        False,
        id="rollback-without-rollback_enabled",
    ),
]


def nickel_verdict(tmp_path: Path, data: dict[str, Any]) -> tuple[bool, str]:
    path = tmp_path / "workflow.ncl"
    path.write_text(to_nickel(data) + "\n")
    try:
        evaluated = evaluate_nickel(path)
    except LoadError as exc:
        return False, str(exc)
    # What the contracts let through is exactly the data the server is given below.
    assert evaluated == data
    return True, "accepted"


def server_verdict(data: dict[str, Any]) -> tuple[bool, str]:
    try:
        build_plan(parse_spec(data))
    except PlanError as exc:
        return False, str(exc)
    return True, "accepted"


@pytest.mark.parametrize(("data", "valid"), EXAMPLES)
def test_nickel_contracts_and_server_validation_agree(
    tmp_path: Path, data: dict[str, Any], valid: bool
) -> None:
    nickel_ok, nickel_says = nickel_verdict(tmp_path, data)
    server_ok, server_says = server_verdict(data)

    assert (nickel_ok, server_ok) == (valid, valid), (
        f"expected {'valid' if valid else 'invalid'}\n"
        f"--- Nickel contracts: {nickel_says}\n--- server: {server_says}"
    )


def test_a_nickel_file_that_never_finishes_is_cut_off(tmp_path: Path) -> None:
    """py-nickel holds the GIL and has no timeout: the loader bounds its worker."""
    path = tmp_path / "spin.ncl"
    path.write_text(
        'let rec spin = fun n => spin (n + 1) in\n{ name = "w", parallel_limit = spin 0, '
        'operations = [{ id = "a", run = { command = ["true"] } }] }\n'
    )
    started = time.monotonic()

    with pytest.raises(LoadError, match="did not finish within 1 s") as caught:
        evaluate_nickel(path, timeout=1)

    assert str(path) in str(caught.value)
    assert time.monotonic() - started < 10
