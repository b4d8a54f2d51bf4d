"""KCL through the official engine (kcl-lib, in its bounded worker) and
``migrate kcl`` round trips on a KCL workspace of the original platform's shape
(tests/fixtures/kcl_workspace: an infra with servers on two providers and a schema
with defaults, optional fields and checks; settings; a workflow; a batch workflow)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from provisioning.infra import InfraError, load_infra
from provisioning.kclmigrate import Action, migrate
from provisioning.schemas import LoadError, load_workflow_file
from provisioning.schemas.kcl import evaluate_kcl, run_kcl
from provisioning.schemas.loader import evaluate_nickel_plain
from provisioning.workflow import build_plan
from provisioning.workflow.validate import parse_spec

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "kcl_workspace"
KCL_FILES = [
    "infra/wuji/infra.k",
    "settings.k",
    "workflows/multi-cloud-deployment.k",
    "workflows/server-cluster.k",
]


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    target = tmp_path / "wuji"
    shutil.copytree(FIXTURE, target)
    return target


def with_workspace(data: dict[str, Any], workspace: Path) -> dict[str, Any]:
    """What the CLI adds to platform operations: the workspace and its infra."""
    ops = []
    for op in data["operations"]:
        if "type" in op or "target" in op:
            op = {
                **op,
                "infra": op.get("infra", "wuji"),
                "params": {"workspace_dir": str(workspace), **op.get("params", {})},
            }
        ops.append(op)
    return {**data, "operations": ops}


def plan_of(path: Path, workspace: Path) -> list[list[tuple[str, tuple[Any, ...], str | None]]]:
    spec = parse_spec(with_workspace(load_workflow_file(path), workspace))
    plan = build_plan(spec)
    return [[(s.id, s.items, s.op.operation_name) for s in layer] for layer in plan.layers] + [
        [("retry", (spec.retry,), str(spec.rollback_enabled))]
    ]


def test_an_infra_in_kcl_loads_with_its_schema_defaults(workspace: Path) -> None:
    infra = load_infra(workspace, "wuji")
    assert [(s.hostname, s.provider, s.memory_mb, s.cores) for s in infra.servers] == [
        ("web-1", "local", 1024, None),
        ("web-2", "local", 1024, 2),
        ("db-1", "aws", 1024, None),
    ]
    assert infra.clusters[0].servers == ["web-1", "web-2"]


def test_a_batch_workflow_in_kcl_is_read_with_one_deprecation_notice(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = workspace / "workflows" / "multi-cloud-deployment.k"
    data = load_workflow_file(path)
    load_workflow_file(path)
    assert data["name"] == "multi_cloud_deployment"
    assert data["operations"][0]["type"] == "server_batch"
    notices = [line for line in capsys.readouterr().err.splitlines() if "deprecated" in line]
    assert notices == [
        f"notice: multi-cloud-deployment.k is KCL, which is deprecated (the platform moved to "
        f"Nickel); convert it with: provisioning migrate kcl {path} --write"
    ]


def test_kcl_errors_are_one_line_with_file_line_and_column(tmp_path: Path) -> None:
    bad = tmp_path / "bad.k"
    bad.write_text(
        'schema S:\n    name: str\n    check:\n        len(name) < 3, "name: too long"\n\ns = S {name = "abcdef"}\n'
    )
    with pytest.raises(LoadError) as caught:
        evaluate_kcl(bad, notice=False)
    message = str(caught.value)
    assert "\n" not in message and "Traceback" not in message
    assert message.startswith(f"{bad}:6:5: EvaluationError: Instance check failed")
    assert f"{bad}:4:1: Check failed on the condition: name: too long" in message
    broken = tmp_path / "broken.k"
    broken.write_text("a = 1\nb = a +\n")
    with pytest.raises(LoadError, match=rf"^{broken}:2:7: InvalidSyntax: expected one of"):
        evaluate_kcl(broken, notice=False)


def test_a_kcl_infra_error_names_the_file(workspace: Path) -> None:
    infra = workspace / "infra" / "wuji" / "infra.k"
    infra.write_text(infra.read_text().replace('hostname = "db-1"', "hostname = 7"))
    with pytest.raises(
        InfraError, match=rf"^{infra}:\d+:\d+: TypeError: expected str, got int\(7\)"
    ):
        load_infra(workspace, "wuji")


def test_a_kcl_evaluation_that_does_not_end_is_stopped(tmp_path: Path) -> None:
    endless = tmp_path / "endless.k"
    endless.write_text("x = [i * i for i in range(2000000000)]\n")
    with pytest.raises(LoadError, match="did not finish within 2 s"):
        run_kcl(endless, timeout=2)


def test_migrate_is_a_dry_run_by_default(workspace: Path) -> None:
    plans = migrate(workspace, write=False)
    assert sorted(str(p.source.relative_to(workspace)) for p in plans) == KCL_FILES
    assert {p.action for p in plans} == {Action.CREATE}
    assert list(workspace.rglob("*.ncl")) == []
    assert all(p.diff.startswith("--- /dev/null") for p in plans)


def test_migrate_writes_nickel_equal_to_the_kcl_and_the_same_plans(workspace: Path) -> None:
    plans = {str(p.source.relative_to(workspace)): p for p in migrate(workspace, write=True)}
    assert {name: (p.action, p.kind) for name, p in plans.items()} == {
        "infra/wuji/infra.k": (Action.CREATE, "infra"),
        "settings.k": (Action.CREATE, "data"),
        "workflows/multi-cloud-deployment.k": (Action.CREATE, "workflow"),
        "workflows/server-cluster.k": (Action.CREATE, "workflow"),
    }
    for name in KCL_FILES:
        source = workspace / name
        kcl = json.loads(run_kcl(source)["json"])
        assert evaluate_nickel_plain(source.with_suffix(".ncl")) == kcl, name
    infra_text = (workspace / "infra" / "wuji" / "infra.ncl").read_text()
    assert "servers | Array Server = [" in infra_text
    assert 'provider | OneOf ["local", "aws", "upcloud"] | default = "local"' in infra_text
    assert "cores | std.number.Integer | optional" in infra_text
    assert "memory_mb = 1024" not in infra_text  # left to the contract's default
    for workflow in ("multi-cloud-deployment", "server-cluster"):
        folder = workspace / "workflows"
        assert plan_of(folder / f"{workflow}.k", workspace) == plan_of(
            folder / f"{workflow}.ncl", workspace
        )
    # The infra now loads from the Nickel (infra.ncl comes first), to the same servers.
    assert load_infra(workspace, "wuji").servers[2].provider == "aws"


def test_migrate_is_idempotent_and_never_overwrites_a_hand_written_file(workspace: Path) -> None:
    migrate(workspace, write=True)
    again = migrate(workspace, write=True)
    assert {p.action for p in again} == {Action.UNCHANGED}
    settings = workspace / "settings.ncl"
    edited = settings.read_text() + "# mine\n"
    settings.write_text(edited)
    hand = workspace / "workflows" / "server-cluster.ncl"
    hand.write_text(
        '{ workflow = { name = "mine", operations = [{ id = "a", run = { command = ["true"] } }] } }\n'
    )
    (workspace / "settings.k").write_text('main_name = "changed"\n')
    plans = {p.source.name: p for p in migrate(workspace, write=True)}
    assert plans["settings.k"].action is Action.KEEP
    assert plans["server-cluster.k"].action is Action.KEEP
    assert "hand-written or was edited" in plans["settings.k"].reason
    assert settings.read_text() == edited
    assert "mine" in hand.read_text()


def test_a_file_that_fails_the_proof_is_reported_and_not_written(workspace: Path) -> None:
    infra = workspace / "infra" / "wuji" / "infra.k"
    infra.write_text(infra.read_text() + '\nowner = "ops"\n')
    (plan,) = [p for p in migrate(workspace, write=True) if p.source == infra]
    assert plan.action is Action.FAILED
    assert plan.reason.startswith("the platform's Infra contract refuses it:")
    assert "owner" in plan.reason
    assert not infra.with_suffix(".ncl").exists()


def test_what_does_not_map_is_kept_as_a_comment_and_listed(tmp_path: Path) -> None:
    source = tmp_path / "odd.k"
    source.write_text(
        "schema Box:\n    size: int | str\n\nschema Disk:\n    gb: int = 10\n    check:\n"
        '        gb % 2 == 0, "gb: even"\n\nbox = Box {size = 1}\ndisk = Disk {}\n'
        "squares = [i * i for i in range(3)]\n"
    )
    (plan,) = migrate(source, write=True)
    assert plan.action is Action.CREATE
    assert [str(u) for u in plan.unmapped] == [
        "line 1: schema Box: a union of types other than string literals; its instances are written as data",
        'line 7: schema Disk: check `gb % 2 == 0, "gb: even"` (the expression Binary)',
    ]
    text = source.with_suffix(".ncl").read_text()
    assert '# KCL, not mapped (line 7: schema Disk: check `gb % 2 == 0, "gb: even"`' in text
    assert evaluate_nickel_plain(source.with_suffix(".ncl")) == {
        "box": {"size": 1},
        "disk": {"gb": 10},
        "squares": [0, 1, 4],
    }


def test_a_cluster_batch_expands_the_infras_cluster(workspace: Path) -> None:
    data = {
        "name": "clusters",
        "operations": [
            {
                "id": "c",
                "type": "cluster_batch",
                "clusters": ["web"],
                "infra": "wuji",
                "params": {"workspace_dir": str(workspace)},
            },
            {"id": "after", "dependencies": ["c"], "run": {"command": ["true"]}},
        ],
    }
    plan = build_plan(parse_spec(data))
    layers = [[s.id for s in layer] for layer in plan.layers]
    assert layers == [["c.web.servers"], ["c.web.taskserv-webserver"], ["c"], ["after"]]
    servers = next(s for s in plan.steps if s.id == "c.web.servers")
    assert servers.items == ("web-1", "web-2")


def test_imports_of_a_kcl_module_evaluate_and_migrate_as_data(tmp_path: Path) -> None:
    (tmp_path / "kcl.mod").write_text(
        '[package]\nname = "ws"\nedition = "v0.9.0"\nversion = "0.0.1"\n'
    )
    (tmp_path / "schemas").mkdir()
    (tmp_path / "schemas" / "server.k").write_text(
        'schema Server:\n    hostname: str\n    provider: str = "local"\n'
    )
    infra = tmp_path / "infra" / "wuji" / "infra.k"
    infra.parent.mkdir(parents=True)
    infra.write_text('import schemas.server as s\n\nservers = [s.Server {hostname = "web-1"}]\n')
    assert load_infra(tmp_path, "wuji").servers[0].provider == "local"
    plans = {p.source.name: p for p in migrate(tmp_path, write=True)}
    assert plans["infra.k"].action is Action.CREATE
    assert [str(u) for u in plans["infra.k"].unmapped] == [
        "line 1: import schemas.server: its schemas are not converted here (their instances "
        "are written as data; migrate that file too)"
    ]
    assert evaluate_nickel_plain(infra.with_suffix(".ncl")) == {
        "servers": [{"hostname": "web-1", "provider": "local"}]
    }
