"""Servers reached over SSH, as a user runs it (the console script, direct mode): a
shell or one command on a server, a host whose sshd died, a changed host key. Every
failure is one line naming the server, and nothing is recorded as installed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from provisioning.providers.lab import hosts
from provisioning.ssh import known_hosts as host_keys
from provisioning.ssh.keys import ensure_key_pair
from tests.acceptance.business_helpers import Workspace, assert_no_leftover, stop_machine
from tests.acceptance.cli_env import Cli
from tests.conftest import wait_for
from tests.lab import leftovers, needs_lab

pytestmark = needs_lab


@pytest.fixture(scope="module")
def machine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    root = tmp_path_factory.mktemp("ssh-machine")
    cli = Cli(root)
    try:
        yield cli
    finally:
        try:
            stop_machine(cli)
        finally:
            assert_no_leftover(str(root))


@pytest.fixture(scope="module")
def workspace(machine: Cli, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    ws = Workspace(machine, tmp_path_factory.mktemp("ssh-ws"))
    try:
        yield ws
    finally:
        ws.teardown()
        assert leftovers(ws.path) == {}


@pytest.fixture
def web1(workspace: Workspace) -> str:
    """web-1 exists (made again if a test deleted it), without taskservs."""
    workspace.ok("server", "create", "web-1", "--no-taskservs", "--direct")
    return workspace.address("web-1")


def test_server_ssh_runs_a_command_there_and_returns_its_exit_code(
    workspace: Workspace, web1: str
) -> None:
    hostname = workspace.remote("web-1", "hostname")
    assert hostname.code == 0, hostname
    assert hostname.stdout == "web-1\n"
    there = workspace.remote("web-1", "readlink", "/proc/self/ns/net").stdout.strip()
    assert there and there != Path("/proc/self/ns/net").readlink().as_posix()
    assert workspace.remote("web-1", "sh", "-c", "exit 7").code == 7
    hostile = workspace.remote("web-1", "printf", "%s", "$(id); `id`")
    assert hostile.stdout == "$(id); `id`"
    unknown = workspace.run("server", "ssh", "$(touch x)", "--", "true")
    assert unknown.code == 2, unknown
    assert "no server" in unknown.stderr
    listing = {r["hostname"]: r for r in workspace.json("server", "list")["servers"]}
    assert listing["web-1"]["ssh"] == {
        "address": web1,
        "port": 22,
        "user": "root",
        "key": str(workspace.path / "runtime" / "keys" / "id_ed25519"),
        "jump": None,
        "use_sudo": False,
    }
    key = workspace.path / "runtime" / "keys" / "id_ed25519"
    assert key.stat().st_mode & 0o777 == 0o600


def test_sshd_stopped_the_install_cannot_connect_and_records_nothing(
    workspace: Workspace, web1: str
) -> None:
    folder = workspace.server_dir("web-1")
    assert hosts.stop_sshd(folder)
    wait_for(
        lambda: workspace.json("server", "list")["servers"][0]["state"] == "sshd-dead",
        message="server list to say sshd-dead",
    )

    failed = workspace.run("taskserv", "create", "webserver", "-s", "web-1", "--direct")

    assert failed.code == 1, failed
    assert "Traceback" not in failed.stderr
    assert f"server web-1 (root@{web1}:22): cannot connect" in failed.stderr
    assert "webserver" not in workspace.installed("web-1")
    assert not workspace.on_host("web-1", "/srv/www/index.html").exists()

    # Creating it again replaces nothing of a living host: delete, then create.
    workspace.ok("server", "delete", "web-1", "--direct", "--auto-approve")
    assert not folder.exists()
    assert leftovers(workspace.path) == {}


def test_a_changed_host_key_refuses_and_installs_nothing(
    workspace: Workspace, web1: str, tmp_path: Path
) -> None:
    known = workspace.path / "runtime" / "known_hosts"
    alias = host_keys.alias("default", "web-1")
    [real] = host_keys.lookup(known, alias)
    impostor = ensure_key_pair(tmp_path / "impostor", "impostor")
    host_keys.forget(known, alias)
    host_keys.record(known, alias, impostor)
    try:
        refused = workspace.run("taskserv", "create", "webserver", "-s", "web-1", "--direct")

        assert refused.code == 1, refused
        assert "Traceback" not in refused.stderr
        # The tool's line (direct mode repeats it as the step's error).
        line = next(ln for ln in refused.stderr.splitlines() if "host key changed" in ln)
        assert f"server web-1 (root@{web1}:22): host key changed" in line
        assert f"recorded {host_keys.fingerprint(impostor)}" in line
        assert f"offered {host_keys.fingerprint(real)}" in line
        assert "webserver" not in workspace.installed("web-1")
        assert not workspace.on_host("web-1", "/srv/www/index.html").exists()
    finally:
        host_keys.forget(known, alias)
        host_keys.record(known, alias, real)
