"""The ``local`` provider against the real filesystem and real processes: a server is
a directory tree under the workspace's ``runtime/servers/<infra>/<hostname>/``, and
deleting it stops the service processes recorded as ``run/<name>.pid``."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from provisioning.providers.base import (
    ProviderContext,
    ProviderError,
    ProviderErrorKind,
    ServerSpec,
)
from provisioning.providers.local import LocalProvider, server_dir, stop_services
from tests.conftest import wait_for


def pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def context(workspace: Path, infra: str = "default") -> ProviderContext:
    return ProviderContext(workspace="acme", workspace_dir=workspace, infra=infra)


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    root = tmp_path / "acme"
    (root / "runtime").mkdir(parents=True)
    return root


@pytest.fixture
def provider(workspace: Path) -> LocalProvider:
    return LocalProvider(context(workspace))


@pytest.fixture
def spawned() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Processes a test starts; whatever survives the test is killed and reaped."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def start_service(
    root: Path, name: str, started: list[subprocess.Popen[bytes]], argv: list[str]
) -> subprocess.Popen[bytes]:
    """Start ``argv`` as a service of the server at ``root``: a session of its own, its
    pid recorded as ``run/<name>.pid`` (as the webserver taskserv does)."""
    process = subprocess.Popen(
        argv,
        cwd=root,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    started.append(process)
    (root / "run" / f"{name}.pid").write_text(f"{process.pid}\n")
    return process


def read_pid(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        return None
    return int(text) if text.isdigit() else None


def http_server_argv() -> list[str]:
    return [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", "0"]


def listening_ports(pid: int) -> set[int]:
    """Loopback TCP ports in LISTEN state owned by ``pid`` (from /proc)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    ports = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
            ports.add(int(fields[1].split(":")[1], 16))
    return ports


# -- create ---------------------------------------------------------------------------------------


def test_create_makes_the_tree_and_server_json(provider: LocalProvider, workspace: Path) -> None:
    spec = ServerSpec(hostname="web-1", plan="medium", labels={"role": "web"})
    record, created = provider.create_server(spec)

    root = workspace / "runtime" / "servers" / "default" / "web-1"
    assert created is True
    assert root == server_dir(provider.context, "web-1")
    for folder in ("etc", "opt", "var", "run", "var/log"):
        assert (root / folder).is_dir(), folder
    assert (root / "etc" / "hostname").read_text() == "web-1\n"
    described = json.loads((root / "server.json").read_text())
    assert described["hostname"] == "web-1"
    assert described["plan"] == "medium"
    assert described["zone"] == "local"
    assert described["labels"] == {"role": "web"}
    assert described["workspace"] == "acme"
    assert described["infra"] == "default"
    assert isinstance(described["created_at"], float)
    assert not (root / ".server.json.tmp").exists()

    assert record.hostname == "web-1"
    assert record.provider == "local"
    assert record.status == "running"
    assert record.address == "127.0.0.1"
    assert record.plan == "medium"
    assert record.zone == "local"
    assert record.labels == {"role": "web"}
    assert record.provider_id == str(root)
    assert record.as_dict()["extra"]["root"] == str(root)


def test_plan_defaults_to_small(provider: LocalProvider) -> None:
    record, created = provider.create_server(ServerSpec(hostname="web-1"))
    assert created
    assert record.plan == "small"


def test_create_is_idempotent(provider: LocalProvider, workspace: Path) -> None:
    first, created = provider.create_server(ServerSpec(hostname="web-1", plan="small"))
    assert created
    server_json = server_dir(provider.context, "web-1") / "server.json"
    before = (server_json.read_bytes(), server_json.stat().st_mtime_ns)
    marker = server_dir(provider.context, "web-1") / "var" / "data.txt"
    marker.write_text("kept")

    again, created_again = provider.create_server(ServerSpec(hostname="web-1", plan="large"))

    assert created_again is False
    assert again == first
    assert (server_json.read_bytes(), server_json.stat().st_mtime_ns) == before
    assert marker.read_text() == "kept"
    assert [r.hostname for r in provider.list_servers()] == ["web-1"]


def test_list_and_find(workspace: Path) -> None:
    ours = LocalProvider(context(workspace))
    other_infra = LocalProvider(context(workspace, "other"))
    for hostname in ("web-2", "node-1", "web-1"):
        ours.create_server(ServerSpec(hostname=hostname))
    other_infra.create_server(ServerSpec(hostname="elsewhere"))
    # A directory without server.json (a creation that never finished) is no server.
    (server_dir(ours.context, "half-made") / "etc").mkdir(parents=True)

    assert [r.hostname for r in ours.list_servers()] == ["node-1", "web-1", "web-2"]
    assert [r.hostname for r in other_infra.list_servers()] == ["elsewhere"]
    found = ours.find_server("web-2")
    assert found is not None
    assert found.hostname == "web-2"
    assert found.status == "running"
    assert ours.find_server("elsewhere") is None
    assert ours.find_server("half-made") is None
    assert ours.find_server("absent") is None


def test_list_of_a_fresh_workspace_is_empty(provider: LocalProvider) -> None:
    assert provider.list_servers() == []


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        (ServerSpec(hostname="big-1", plan="huge"), ["big-1", "unknown plan 'huge'", "small"]),
        (
            ServerSpec(hostname="far-1", plan="small", zone="de-fra1"),
            ["far-1", "unknown zone 'de-fra1'"],
        ),
    ],
    ids=["plan", "zone"],
)
def test_unknown_plan_or_zone_is_an_invalid_error_and_creates_nothing(
    provider: LocalProvider, workspace: Path, spec: ServerSpec, words: list[str]
) -> None:
    with pytest.raises(ProviderError) as caught:
        provider.create_server(spec)

    assert caught.value.kind is ProviderErrorKind.INVALID
    message = str(caught.value)
    assert message.startswith("invalid: creating server ")
    for word in words:
        assert word in message
    assert not server_dir(provider.context, spec.hostname).exists()
    assert provider.list_servers() == []


@pytest.mark.parametrize("hostname", ["a;rm -rf /", "$(x)", "../etc", "Web_1", "-web", "a" * 64])
def test_a_spec_with_a_hostile_hostname_cannot_be_made(hostname: str) -> None:
    with pytest.raises(ValueError, match="RFC 1123"):
        ServerSpec(hostname=hostname)


def test_plans_zones_pricing(provider: LocalProvider) -> None:
    assert [p["plan"] for p in provider.plans()] == ["small", "medium", "large"]
    assert provider.zones() == [{"zone": "local", "description": "this machine"}]
    assert {p["plan"] for p in provider.pricing()} == {"small", "medium", "large"}


# -- delete ---------------------------------------------------------------------------------------


def test_delete_stops_recorded_services_and_removes_the_tree(
    provider: LocalProvider, spawned: list[subprocess.Popen[bytes]]
) -> None:
    provider.create_server(ServerSpec(hostname="web-1"))
    root = server_dir(provider.context, "web-1")
    web = start_service(root, "x", spawned, http_server_argv())
    # A service whose leader has a child of its own: the whole group must go.
    group = start_service(
        root, "worker", spawned, ["sh", "-c", "sleep 300 & echo $! > child.pid; wait"]
    )
    port = wait_for(lambda: listening_ports(web.pid), message="http.server listening")
    child = wait_for(lambda: read_pid(root / "child.pid"), message="the group's child pid")
    assert all(pid_alive(p) for p in (web.pid, group.pid, child)), port

    assert provider.delete_server("web-1") is True

    pids = (web.pid, group.pid, child)
    wait_for(lambda: not any(map(pid_alive, pids)), timeout=10, message=f"{pids} to be gone")
    assert web.wait(timeout=5) == -signal.SIGTERM
    assert not root.exists()
    assert provider.find_server("web-1") is None
    assert provider.list_servers() == []

    assert provider.delete_server("web-1") is False


def test_delete_of_a_server_that_never_existed(provider: LocalProvider) -> None:
    assert provider.delete_server("ghost") is False


def test_delete_tolerates_stale_and_garbage_pid_files(
    provider: LocalProvider, spawned: list[subprocess.Popen[bytes]]
) -> None:
    provider.create_server(ServerSpec(hostname="web-1"))
    root = server_dir(provider.context, "web-1")
    (root / "run" / "garbage.pid").write_text("not a pid\n")
    (root / "run" / "empty.pid").write_text("")
    finished = start_service(root, "finished", spawned, ["true"])
    finished.wait(timeout=10)  # reaped: its pid now names nothing of ours

    assert provider.delete_server("web-1") is True
    assert not root.exists()


def test_a_service_ignoring_sigterm_is_killed_after_the_grace(
    provider: LocalProvider, spawned: list[subprocess.Popen[bytes]]
) -> None:
    provider.create_server(ServerSpec(hostname="web-1"))
    root = server_dir(provider.context, "web-1")
    stubborn = start_service(
        root,
        "stubborn",
        spawned,
        [
            sys.executable,
            "-c",
            "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); open('ready', 'w').close(); time.sleep(300)",
        ],
    )
    wait_for(lambda: (root / "ready").exists(), message="SIGTERM ignored")
    other = start_service(root, "other", spawned, http_server_argv())

    stopped = stop_services(root, only="stubborn", grace=0.3)

    assert stopped == [stubborn.pid]
    assert stubborn.wait(timeout=10) == -signal.SIGKILL
    assert not (root / "run" / "stubborn.pid").exists()
    # ``only`` stops that service alone.
    assert pid_alive(other.pid)
    assert (root / "run" / "other.pid").exists()


def test_delete_refuses_a_hostname_that_escapes_the_workspace(
    provider: LocalProvider, tmp_path: Path
) -> None:
    provider.create_server(ServerSpec(hostname="web-1"))
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious.txt").write_text("keep me")
    escaping = os.path.relpath(victim, server_dir(provider.context, "x").parent)
    assert escaping == "../../../../victim"

    with pytest.raises((ValueError, ProviderError)):
        provider.delete_server(escaping)
    assert (victim / "precious.txt").read_text() == "keep me"
