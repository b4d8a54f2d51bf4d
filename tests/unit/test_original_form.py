"""The original platform's batch form -> this platform's spec (workflow/original.py):
every documented field maps or is refused by name."""

from __future__ import annotations

from typing import Any

import pytest

from provisioning.workflow import PlanError, build_plan
from provisioning.workflow.original import from_original, is_original
from provisioning.workflow.validate import parse_spec

PARAMS = {"workspace_dir": "/ws"}


def server_batch(**fields: Any) -> dict[str, Any]:
    return {
        "id": "servers",
        "type": "server_batch",
        "provider": "local",
        "infra": "wuji",
        "params": PARAMS,
        "server_configs": [{"name": "web-01", "plan": "small"}, {"name": "web-02", "zone": "b"}],
        **fields,
    }


def taskserv_batch(**fields: Any) -> dict[str, Any]:
    return {
        "id": "taskservs",
        "type": "taskserv_batch",
        "infra": "wuji",
        "params": PARAMS,
        "dependencies": ["servers"],
        "taskservs": ["runc", "containerd"],
        **fields,
    }


def workflow(*ops: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"name": "multi", "operations": list(ops), **fields}


def translated(data: dict[str, Any]) -> dict[str, Any]:
    spec, problems = from_original(data)
    assert problems == [], problems
    assert isinstance(spec, dict)
    return spec


def problems_of(data: dict[str, Any]) -> list[str]:
    _, problems = from_original(data)
    return [str(p) for p in problems]


def test_a_native_workflow_passes_through_unchanged() -> None:
    native = workflow({"id": "a", "run": {"command": ["true"]}, "depends_on": []})
    assert not is_original(native)
    assert from_original(native) == (native, [])


def test_server_batch_becomes_one_server_create_over_its_configs() -> None:
    spec = translated(workflow(server_batch()))
    (op,) = spec["operations"]
    assert (op["target"], op["type"], op["id"]) == ("server", "create", "servers")
    assert op["items"] == [
        {"hostname": "web-01", "plan": "small", "provider": "local"},
        {"hostname": "web-02", "zone": "b", "provider": "local"},
    ]
    assert "provider" not in op and "server_configs" not in op


def test_taskserv_batch_installs_in_listed_order_on_the_servers_it_depends_on() -> None:
    spec = translated(workflow(server_batch(), taskserv_batch()))
    ops = {op["id"]: op for op in spec["operations"]}
    first, last = ops["taskservs.runc"], ops["taskservs"]
    assert first["params"]["taskserv"] == "runc" and last["params"]["taskserv"] == "containerd"
    assert first["depends_on"] == ["servers"] and last["depends_on"] == ["taskservs.runc"]
    assert first["items"] == last["items"] == ["web-01", "web-02"]
    plan = build_plan(parse_spec(spec))
    assert [[s.id for s in layer] for layer in plan.layers] == [
        ["servers"],
        ["taskservs.runc"],
        ["taskservs"],
    ]


def test_taskserv_batch_filters_servers_by_provider_and_says_when_none_is_left() -> None:
    refused = problems_of(workflow(server_batch(), taskserv_batch(provider="aws")))
    assert refused == [
        "operations[1]: no servers of provider 'aws' to install on: name them in servers = "
        "[...], or depend on the server_batch operation that creates them"
    ]
    spec = translated(workflow(taskserv_batch(servers=["db-1"], dependencies=[])))
    assert spec["operations"][-1]["items"] == ["db-1"]


def test_parallel_false_runs_the_items_one_after_another() -> None:
    spec = translated(workflow(server_batch(parallel=False)))
    ops = spec["operations"]
    assert [(o["id"], o["depends_on"], len(o["items"])) for o in ops] == [
        ("servers.1", [], 1),
        ("servers", ["servers.1"], 1),
    ]
    assert all("parallel" not in o for o in ops)


def test_dependencies_records_of_kind_hard_are_depends_on() -> None:
    spec = translated(
        workflow(
            {"id": "a", "run": {"command": ["true"]}},
            {
                "id": "b",
                "run": {"command": ["true"]},
                "dependencies": [{"id": "a", "kind": "hard"}],
            },
        )
    )
    assert spec["operations"][1]["depends_on"] == ["a"]


@pytest.mark.parametrize("kind", ["soft", "optional"])
def test_soft_and_optional_dependencies_are_refused_by_name(kind: str) -> None:
    refused = problems_of(
        workflow(
            {"id": "a", "run": {"command": ["true"]}},
            {"id": "b", "run": {"command": ["true"]}, "dependencies": [{"id": "a", "kind": kind}]},
        )
    )
    assert len(refused) == 1
    assert refused[0].startswith(f"operations[1].dependencies[0].kind: {kind!r} is not supported")


def test_retry_policy_is_retry_and_its_unknown_fields_are_named() -> None:
    op = {"id": "a", "run": {"command": ["true"]}}
    spec = translated(workflow(op, retry_policy={"max_attempts": 2, "backoff": "linear"}))
    assert spec["retry"] == {"max_attempts": 2, "backoff": "linear"}
    assert "retry_policy" not in spec
    assert problems_of(workflow(op, retry_policy={"max_attempts": 2, "jitter": True})) == [
        "retry_policy.jitter: not a field of the retry policy "
        "(known: max_attempts, backoff, initial_delay, max_delay)"
    ]


def test_rollback_strategy_sets_rollback_and_the_default_on_failure() -> None:
    ops = (
        {"id": "a", "run": {"command": ["true"]}},
        {"id": "b", "run": {"command": ["true"]}, "on_failure": "fail"},
    )
    strategy = {
        "enabled": True,
        "on_partial_failure": "rollback",
        "checkpoint_interval": 30,
        "preserve_successful": False,
    }
    spec = translated(workflow(*ops, rollback_strategy=strategy))
    assert spec["rollback_enabled"] is True
    assert [o["on_failure"] for o in spec["operations"]] == ["rollback", "fail"]
    spec = translated(
        workflow(*ops, rollback_strategy={"enabled": False, "on_partial_failure": "stop"})
    )
    assert spec["rollback_enabled"] is False
    assert spec["operations"][0]["on_failure"] == "fail"


@pytest.mark.parametrize(
    ("strategy", "message"),
    [
        (
            {"on_partial_failure": "rollback", "preserve_successful": True},
            "rollback_strategy.preserve_successful: true keeps what completed, which "
            "contradicts on_partial_failure = rollback",
        ),
        (
            {"checkpoint_interval": 0},
            "rollback_strategy.checkpoint_interval: expected a number of seconds above 0",
        ),
        (
            {"keep": 1},
            "rollback_strategy.keep: unknown field (known: enabled, on_partial_failure, checkpoint_interval, preserve_successful)",
        ),
        (
            {"enabled": False, "on_partial_failure": "rollback"},
            "rollback_strategy.on_partial_failure: rollback needs enabled = true",
        ),
    ],
)
def test_rollback_strategy_contradictions_are_refused(
    strategy: dict[str, Any], message: str
) -> None:
    assert problems_of(
        workflow({"id": "a", "run": {"command": ["true"]}}, rollback_strategy=strategy)
    ) == [message]


def test_preserve_successful_keeps_completed_work_on_failure() -> None:
    spec = translated(
        workflow(
            {"id": "a", "run": {"command": ["true"]}},
            rollback_strategy={"preserve_successful": True},
        )
    )
    assert spec["operations"][0]["on_failure"] == "continue"


def test_fields_of_another_batch_type_are_refused_by_name() -> None:
    assert problems_of(workflow(server_batch(taskservs=["runc"]))) == [
        "operations[0].taskservs: not a field of server_batch"
    ]
    assert problems_of(workflow({"id": "a", "run": {"command": ["true"]}, "taskservs": ["x"]})) == [
        "operations[0].taskservs: only for type = server_batch | taskserv_batch | cluster_batch "
        "(this is None)"
    ]
    config = server_batch(server_configs=[{"name": "a", "ram": 2}])
    assert problems_of(workflow(config))[0].startswith(
        "operations[0].server_configs[0].ram: unknown server field"
    )


def test_cluster_batch_needs_the_infra_to_expand() -> None:
    data = workflow({"id": "c", "type": "cluster_batch", "clusters": ["web"]})
    assert problems_of(data) == [
        "operations[0]: cluster_batch needs the workspace's infra to expand its clusters"
    ]

    def expand(op: dict[str, Any], name: str) -> list[dict[str, Any]]:
        return [
            {"id": "servers", "target": "server", "type": "create", "items": ["w1"]},
            {
                "id": "taskserv-runc",
                "target": "taskserv",
                "type": "create",
                "depends_on": ["servers"],
            },
        ]

    spec, problems = from_original(
        {
            **data,
            "operations": [
                {"id": "first", "run": {"command": ["true"]}},
                {**data["operations"][0], "dependencies": ["first"]},
            ],
        },
        expand,
    )
    assert problems == []
    ids = {o["id"]: o["depends_on"] for o in spec["operations"]}
    assert ids == {
        "first": [],
        "c.web.servers": ["first"],
        "c.web.taskserv-runc": ["c.web.servers"],
        "c": ["c.web.taskserv-runc"],
    }


def test_parse_spec_reports_every_problem_of_the_original_form() -> None:
    with pytest.raises(PlanError) as caught:
        parse_spec(workflow(server_batch(server_configs=[]), retry_policy={"tries": 3}))
    assert [p.where for p in caught.value.problems] == [
        "retry_policy.tries",
        "operations[0].server_configs",
    ]
