"""The plan and the destroy confirmation (issue 13, item 5b), on the local provider in
direct mode: a changed plan shows as `~` with old -> new, deletes ask first."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from provisioning.providers.lab import hosts
from tests.acceptance.business_helpers import Workspace, assert_no_leftover, get, stop_machine
from tests.acceptance.cli_env import PROVISIONING, Cli


@pytest.fixture
def workspace(tmp_path: Path) -> Iterator[Workspace]:
    cli = Cli(tmp_path / "machine")
    ws = Workspace(cli, tmp_path)
    try:
        yield ws
    finally:
        try:
            ws.teardown()
            stop_machine(cli)
        finally:
            assert_no_leftover(str(tmp_path))


def test_plan_shows_create_update_and_no_changes(workspace: Workspace) -> None:
    fresh = workspace.ok("server", "create", "web-1", "--check")
    assert "+ server web-1" in fresh.stdout
    assert "Plan: 2 to add, 0 to change, 0 to destroy." in fresh.stdout
    workspace.ok("server", "create", "web-1", "--direct")
    same = workspace.ok("server", "create", "web-1", "--check")
    assert "No changes." in same.stdout, same
    workspace.edit_infra(
        'hostname = "web-1", provider = "local", plan = "small"',
        'hostname = "web-1", provider = "local", plan = "large"',
    )
    changed = workspace.ok("server", "create", "web-1", "--check")
    assert "~ server web-1" in changed.stdout
    assert "plan: 'small' -> 'large'" in changed.stdout
    assert "Plan: 0 to add, 1 to change, 0 to destroy." in changed.stdout
    as_json = workspace.json("server", "create", "web-1", "--check")
    assert as_json["summary"] == {"add": 0, "change": 1, "destroy": 0}
    assert as_json["changes"][0]["changes"] == {"plan": ["small", "large"]}

    applied = workspace.ok("server", "create", "web-1", "--direct")
    assert "web-1 resized: plan small -> large" in applied.stderr + applied.stdout, applied
    assert workspace.state()["servers"]["web-1"]["plan"] == "large"
    after = workspace.ok("server", "create", "web-1", "--check")
    assert "No changes." in after.stdout, after


def test_a_changed_taskserv_setting_shows_as_update_and_is_applied(workspace: Workspace) -> None:
    workspace.ok("server", "create", "web-1", "--direct")
    pid = workspace.remote("web-1", "cat", "/run/provisioning/webserver.pid").stdout
    assert workspace.installed("web-1")["webserver"]["settings"]["port"] == 8080
    workspace.edit_infra(
        'webserver = { settings = { title = "Hello from acme/default" } }',
        'webserver = { settings = { title = "Hello again", port = 8081 } }',
    )
    changed = workspace.ok("server", "create", "web-1", "--check")
    assert "~ taskserv webserver on web-1" in changed.stdout, changed
    assert "settings.port: 8080 -> 8081" in changed.stdout
    assert "settings.title: 'Hello from acme/default' -> 'Hello again'" in changed.stdout
    assert "Plan: 0 to add, 1 to change, 0 to destroy." in changed.stdout

    applied = workspace.ok("server", "create", "web-1", "--direct")
    assert "updating webserver 1.0.0 on web-1" in applied.stderr, applied
    recorded = workspace.installed("web-1")["webserver"]
    address = workspace.address("web-1")
    assert recorded["url"] == f"http://{address}:8081/"
    # Reconfigured and restarted on the server: a new service process, on the new port.
    assert workspace.remote("web-1", "cat", "/run/provisioning/webserver.pid").stdout != pid
    page = get(recorded["url"])
    assert page.status_code == 200 and "Hello again" in page.text
    assert "No changes." in workspace.ok("server", "create", "web-1", "--check").stdout


def test_delete_asks_for_yes(workspace: Workspace) -> None:
    workspace.ok("server", "create", "web-1", "--no-taskservs", "--direct")
    refused = workspace.run("server", "delete", "web-1", "--direct")
    assert refused.code == 2, refused
    assert "--auto-approve" in refused.stderr
    assert "web-1" in workspace.state()["servers"]

    def answer(text: str) -> subprocess.CompletedProcess[str]:
        # `script` gives the CLI a terminal on stdin, as a person at a keyboard has.
        command = f"{PROVISIONING} server delete web-1 --direct"
        return subprocess.run(
            ["script", "-qec", command, "/dev/null"],
            input=text,
            env=workspace.cli.env,
            cwd=workspace.path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    no = answer("no\n")
    assert no.returncode == 1, no
    assert "- server web-1" in no.stdout and "not approved" in no.stdout
    assert "web-1" in workspace.state()["servers"]
    yes = answer("yes\n")
    assert yes.returncode == 0, yes
    assert "web-1" not in workspace.state()["servers"]


def test_check_refuses_an_unknown_plan(workspace: Workspace) -> None:
    workspace.edit_infra('plan = "small"', 'plan = "huge"')
    refused = workspace.run("server", "create", "--check")
    assert refused.code == 2, refused
    assert "server web-1: plan 'huge' is unknown to local (known plans: " in refused.stderr
    assert refused.stderr.count("\n") == 1


ROOT = Path(__file__).resolve().parents[2]


def test_readme_workflow_example_ships_and_checks(tmp_path: Path) -> None:
    example = ROOT / "examples" / "server-cluster.ncl"
    body = "\n".join(line for line in example.read_text().splitlines() if not line.startswith("#"))
    readme = (ROOT / "README.md").read_text()
    assert body.strip() in readme  # the README shows the very file that ships
    cli = Cli(tmp_path / "machine")
    made = cli.run("workspace", "init", "acme", "--infra", "wuji")
    assert made.code == 0, made
    checked = cli.run("workflow", "submit", str(example), "--check", cwd=cli.root / "acme")
    assert checked.code == 0, checked
    assert "layer 1:" in checked.stdout and "smoke <- servers" in checked.stdout


def test_check_sees_a_server_gone_at_the_provider(workspace: Workspace) -> None:
    workspace.ok("server", "create", "web-1", "--no-taskservs", "--direct")
    assert (
        "No changes."
        in workspace.ok("server", "create", "web-1", "--no-taskservs", "--check").stdout
    )
    # Removed behind the platform's back (at the provider, its state file untouched):
    # the record says it exists, the provider does not.
    workspace.remember_services()
    assert hosts.destroy(workspace.server_dir("web-1"))
    drifted = workspace.ok("server", "create", "web-1", "--no-taskservs", "--check")
    assert "+ server web-1" in drifted.stdout, drifted
    assert "(drift)" in drifted.stdout
    assert "Plan: 1 to add, 0 to change, 0 to destroy." in drifted.stdout


def test_check_sees_a_server_changed_at_the_provider(workspace: Workspace) -> None:
    workspace.ok("server", "create", "web-1", "--no-taskservs", "--direct")
    # Resized behind the platform's back: the provider's own record changes, the
    # workspace's state does not.
    root = workspace.server_dir("web-1")
    record = hosts.read(root)
    assert record is not None and record["plan"] == "small"
    hosts.write(root, {**record, "plan": "large"})
    assert workspace.state()["servers"]["web-1"]["plan"] == "small"
    drifted = workspace.ok("server", "create", "web-1", "--no-taskservs", "--check")
    assert "~ server web-1" in drifted.stdout, drifted
    assert "plan: 'large' -> 'small'" in drifted.stdout
    assert "changed at the provider since it was recorded (plan) (drift)" in drifted.stdout
    assert "Plan: 0 to add, 1 to change, 0 to destroy." in drifted.stdout
    applied = workspace.ok("server", "create", "web-1", "--no-taskservs", "--direct")
    assert "web-1 resized: plan large -> small" in applied.stderr + applied.stdout, applied
    assert hosts.read(root) == {**record, "plan": "small"}
    after = workspace.ok("server", "create", "web-1", "--no-taskservs", "--check")
    assert "No changes." in after.stdout, after
