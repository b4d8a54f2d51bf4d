"""Workflow files: a ``taskserv.create`` operation pulls in its taskserv's
dependencies (as ``provisioning taskserv create`` does), and a user's Nushell
library adds to the platform's instead of replacing it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from provisioning.config.models import PACKAGED_NULIB, NushellSection, Settings
from provisioning.execution.runners import build_invocation
from provisioning.tasks import RunSpec
from provisioning.workflow import build_plan
from provisioning.workflow.validate import parse_spec


def taskserv_op(op_id: str, name: str, **more: Any) -> dict[str, Any]:
    return {
        "id": op_id,
        "target": "taskserv",
        "type": "create",
        "infra": "default",
        "items": ["node-1"],
        "params": {"workspace_dir": "/nonexistent-workspace", "taskserv": name},
        **more,
    }


def test_a_taskserv_operation_installs_its_dependencies_first() -> None:
    spec = parse_spec({"name": "k8s", "operations": [taskserv_op("kube", "kubernetes")]})

    ops = {op.id: op for op in spec.operations}
    assert {op_id: op.params["taskserv"] for op_id, op in ops.items()} == {
        "kube": "kubernetes",
        "kube-containerd": "containerd",
        "kube-etcd": "etcd",
        "kube-containerd-runc": "runc",
    }
    assert sorted(ops["kube"].depends_on) == ["kube-containerd", "kube-etcd"]
    assert ops["kube-containerd"].depends_on == ["kube-containerd-runc"]
    assert all(op.items == ["node-1"] for op in ops.values())
    order = [step.id for step in build_plan(spec).steps]
    assert (
        order.index("kube-containerd-runc") < order.index("kube-containerd") < order.index("kube")
    )
    assert order.index("kube-etcd") < order.index("kube")


def test_a_dependency_the_file_installs_itself_becomes_an_edge() -> None:
    spec = parse_spec(
        {
            "name": "stack",
            "operations": [
                taskserv_op("servers-ready", "runc"),
                taskserv_op("containerd", "containerd"),
            ],
        }
    )

    assert [op.id for op in spec.operations] == ["servers-ready", "containerd"]
    assert spec.operations[1].depends_on == ["servers-ready"]


def test_a_users_nushell_library_adds_to_the_platforms(tmp_path: Path) -> None:
    own = tmp_path / "my-nulib"
    own.mkdir()
    settings = Settings(nushell=NushellSection(provisioning_lib=str(own)))
    run = RunSpec.model_validate({"nushell": {"module": "x.nu", "function": "main"}})

    invocation = build_invocation(run, {}, settings, task_env={})

    libs = invocation.env["NU_LIB_DIRS"].split("\x1e")
    assert libs == [str(own), str(PACKAGED_NULIB)]
