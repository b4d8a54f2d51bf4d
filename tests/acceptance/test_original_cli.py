"""A user of the original platform, on the real console scripts: the documented
commands on ``.k`` files, ``migrate kcl`` on a KCL workspace and the migrated Nickel
submitted again with the same plan, the original batch form run on the orchestrator,
the seed's body verbatim, and the SurrealDB server flags."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.acceptance.business_helpers import Workspace, assert_no_leftover, stop_machine
from tests.acceptance.cli_env import Cli
from tests.acceptance.conftest import BIN, free_port
from tests.conftest import wait_for

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "kcl_workspace"
DONE = {"completed", "failed", "cancelled", "rolled_back", "rollback_failed"}


@pytest.fixture
def machine(tmp_path: Path) -> Iterator[Cli]:
    cli = Cli(tmp_path / "machine")
    try:
        yield cli
    finally:
        try:
            stop_machine(cli)
        finally:
            assert_no_leftover(str(tmp_path))


@pytest.fixture
def kcl_workspace(machine: Cli, tmp_path: Path) -> Iterator[Workspace]:
    """A workspace holding the original's KCL files (infra wuji, workflows, settings)."""
    ws = Workspace(machine, tmp_path)
    shutil.copytree(FIXTURE, ws.path, dirs_exist_ok=True)
    yield ws
    ws.teardown()


def plans(ws: Workspace, suffix: str) -> tuple[Any, Any, str]:
    workflow = ws.run(
        "workflow", "submit", f"workflows/server-cluster{suffix}", "--check", "--json"
    )
    batch = ws.run(
        "batch", "submit", f"workflows/multi-cloud-deployment{suffix}", "--check", "--json"
    )
    assert workflow.code == 0, workflow
    assert batch.code == 0, batch
    return workflow.json(), batch.json(), workflow.stderr + batch.stderr


def test_kcl_files_submit_then_migrate_and_submit_again_with_the_same_plan(
    kcl_workspace: Workspace,
) -> None:
    ws = kcl_workspace
    kcl_workflow, kcl_batch, notices = plans(ws, ".k")
    assert kcl_workflow["layers"] == [["servers"], ["web"]]
    assert kcl_batch["layers"] == [["local_servers"], ["local_taskservs.runc"], ["local_taskservs"]]
    assert kcl_batch["tasks"] == 6
    assert notices.count("is KCL, which is deprecated") == 2
    assert "provisioning migrate kcl" in notices

    dry = ws.run("migrate", "kcl", ".")
    assert dry.code == 0, dry
    assert "dry run: 4 file(s) to write, 0 failed" in dry.stdout
    assert "+++ infra/wuji/infra.ncl" in dry.stdout or "infra.ncl" in dry.stdout
    assert list(ws.path.glob("workflows/*.ncl")) == []

    written = ws.run("migrate", "kcl", ".", "--write")
    assert written.code == 0, written
    assert "4 file(s) written, 0 failed" in written.stdout
    ncl_workflow, ncl_batch, quiet = plans(ws, ".ncl")
    assert (ncl_workflow, ncl_batch) == (kcl_workflow, kcl_batch)
    assert "deprecated" not in quiet

    again = ws.json("migrate", "kcl", ".")
    assert {f["action"] for f in again["files"]} == {"unchanged"}


def test_a_kcl_error_is_one_line_with_file_line_and_column(kcl_workspace: Workspace) -> None:
    bad = kcl_workspace.path / "workflows" / "bad.k"
    bad.write_text('workflow = {\n    name = "x"\n    operations = [\n        {id = }\n    ]\n}\n')
    result = kcl_workspace.run("workflow", "submit", "workflows/bad.k", "--check")
    assert result.code == 2, result
    errors = [line for line in result.stderr.splitlines() if "deprecated" not in line]
    assert len(errors) == 1, result
    assert ":4:" in errors[0] and "bad.k" in errors[0] and "InvalidSyntax" in errors[0]
    assert "Traceback" not in result.stderr
    migrated = kcl_workspace.run("migrate", "kcl", "workflows/bad.k")
    assert (
        migrated.code == 1 and "FAILED" in migrated.stdout and not bad.with_suffix(".ncl").exists()
    )


def test_the_original_batch_form_runs_on_the_orchestrator(kcl_workspace: Workspace) -> None:
    ws = kcl_workspace
    submitted = ws.run(
        "batch", "submit", "workflows/multi-cloud-deployment.k", "--wait", "--json", timeout=180
    )
    assert submitted.code == 0, submitted
    final = submitted.json()
    assert final["status"] == "completed", final
    # The servers came from the batch's server_configs (they are not in the infra).
    for host in ("app-1", "app-2"):
        assert set(ws.installed(host)) == {"runc", "containerd"}


def test_the_seed_body_verbatim(kcl_workspace: Workspace) -> None:
    ws = kcl_workspace
    started = ws.cli.run("orchestrator", "start", "--daemon")
    assert started.code == 0, started
    token = (ws.cli.data_dir / "api-token").read_text().strip()
    with httpx.Client(base_url=ws.cli.url, headers={"Authorization": f"Bearer {token}"}) as api:
        wrong = api.post(
            "/workflows/servers/create",
            json={"type": "cluster_create", "infra": "wuji", "params": {"workspace": str(ws.path)}},
        )
        assert wrong.status_code == 422
        assert (
            wrong.json()["error"] == "type: this endpoint runs server_create, not 'cluster_create'"
        )
        # Only the local servers: the seed's params name which ones.
        body = {
            "type": "server_create",
            "infra": "wuji",
            "params": {"workspace": str(ws.path), "servers": ["web-1"]},
        }
        created = api.post("/workflows/servers/create", json=body)
        assert created.status_code == 201, created.text
        assert created.json()["status"] == "queued"
        workflow_id = created.json()["workflow_id"]

        def done() -> dict[str, Any] | None:
            found: dict[str, Any] = api.get(f"/workflows/{workflow_id}?steps=true").json()
            return found if found["status"] in DONE else None

        try:
            final = wait_for(done, timeout=120, message="seed workflow")
            assert final["status"] == "completed", final
            assert {s["id"] for s in final["steps"]} == {"servers", "taskserv-webserver"}
        finally:
            deleted = ws.run(
                "server", "delete", "web-1", "--infra", "wuji", "--direct", "--auto-approve"
            )
            assert deleted.code == 0, deleted


def orchestrator(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            str(BIN / "provisioning-orchestrator"),
            "--data-dir",
            str(tmp_path / "data"),
            "--port",
            str(free_port()),
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={
            "PATH": str(BIN),
            "HOME": str(tmp_path),
            "PROVISIONING_SYSTEM_CONFIG": str(tmp_path / "none.toml"),
        },
    )


def test_surrealdb_server_mode_never_falls_back_to_embedded(tmp_path: Path) -> None:
    missing = orchestrator(tmp_path, "--storage-type", "surrealdb-server")
    assert missing.returncode == 1
    assert missing.stderr.strip() == (
        "provisioning-orchestrator: --storage-type surrealdb-server needs --surrealdb-url "
        "ws://HOST:PORT (storage.surrealdb_url); it never falls back to the embedded store"
    )
    port = free_port()
    refused = orchestrator(
        tmp_path, "--storage-type", "surrealdb-server", "--surrealdb-url", f"ws://127.0.0.1:{port}",
        "--surrealdb-username", "root", "--surrealdb-password", "s3cret-word",
    )  # fmt: skip
    assert refused.returncode == 1
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        f"provisioning-orchestrator: cannot open SurrealDB at ws://127.0.0.1:{port}"
    )
    assert "s3cret-word" not in refused.stderr and "root" not in refused.stderr
    assert not (tmp_path / "data" / "surreal").exists()
    stray = orchestrator(tmp_path, "--surrealdb-url", "ws://127.0.0.1:1")
    assert (
        stray.returncode == 1
        and "is for --storage-type surrealdb-server, not sqlite" in stray.stderr
    )


def test_env_never_shows_the_surrealdb_password(machine: Cli) -> None:
    shown = machine.run(
        "env", "--json", env={"PROVISIONING_STORAGE_SURREALDB_PASSWORD": "s3cret-word"}
    )
    assert shown.code == 0, shown
    assert shown.json()["storage.surrealdb_password"]["value"] == "(hidden)"
    assert "s3cret-word" not in shown.stdout + shown.stderr
