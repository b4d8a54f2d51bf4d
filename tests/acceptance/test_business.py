"""Servers, taskservs and clusters end to end: the real ``provisioning`` console script
on an isolated machine (:class:`~tests.acceptance.cli_env.Cli`), in a workspace made by
``provisioning workspace init``, on the ``local`` provider. Checks look at what exists
(directories, rendered files, processes, ports, HTTP answers), not at status strings.

Every test deletes its servers directly and stops the orchestrators it caused in its
finalizers, then checks that no process mentioning its folder is left.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.acceptance.business_helpers import (
    CLUSTER_TASKSERVS,
    DEPENDS_ON,
    VERSIONS,
    WORKFLOW_DONE,
    Workspace,
    answers,
    assert_no_leftover,
    get,
    leftover_processes,
    step_times,
    stop_machine,
    submitted_id,
    task_items,
)
from tests.acceptance.cli_env import Cli, Result
from tests.acceptance.conftest import pid_alive
from tests.conftest import wait_for
from tests.lab import leftovers, needs_lab

pytestmark = needs_lab

NO_AUTO_START = {"PROVISIONING_ORCHESTRATOR_AUTO_START": "false"}
FALLBACK = {"PROVISIONING_ORCHESTRATOR_FALLBACK_TO_DIRECT": "true"}
NO_FALLBACK = {"PROVISIONING_ORCHESTRATOR_FALLBACK_TO_DIRECT": "false"}
KUBERNETES_STACK = ("runc", "containerd", "etcd", "kubernetes")


# -- fixtures -------------------------------------------------------------------------------------


@pytest.fixture
def machine(tmp_path: Path) -> Iterator[Cli]:
    """A machine with no orchestrator running (one may be auto-started by a test)."""
    cli = Cli(tmp_path / "machine")
    try:
        yield cli
    finally:
        try:
            stop_machine(cli)
        finally:
            assert_no_leftover(str(tmp_path))


@pytest.fixture
def workspace(machine: Cli, tmp_path: Path) -> Iterator[Workspace]:
    ws = Workspace(machine, tmp_path)
    yield ws
    ws.teardown()


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    """A machine whose orchestrator was started with ``orchestrator start --daemon``."""
    root = tmp_path_factory.mktemp("orchestrated")
    cli = Cli(root)
    try:
        started = cli.run("orchestrator", "start", "--daemon")
        assert started.code == 0, started
        assert cli.healthy()
        yield cli
    finally:
        try:
            stop_machine(cli)
        finally:
            assert_no_leftover(str(root))


@pytest.fixture
def orchestrated(running: Cli, tmp_path: Path) -> Iterator[Workspace]:
    """A fresh workspace on the machine whose orchestrator runs."""
    ws = Workspace(running, tmp_path)
    try:
        yield ws
    finally:
        try:
            ws.teardown()
        finally:
            assert_no_leftover(str(ws.path))


@pytest.fixture(scope="module")
def idle(running: Cli, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    """A workspace on the orchestrated machine in which nothing is ever created."""
    ws = Workspace(running, tmp_path_factory.mktemp("idle"))
    yield ws
    ws.teardown()


@pytest.fixture(scope="module")
def api(running: Cli) -> Iterator[httpx.Client]:
    token = (running.data_dir / "api-token").read_text().strip()
    with httpx.Client(
        base_url=running.url, headers={"Authorization": f"Bearer {token}"}, timeout=10
    ) as client:
        yield client


# -- helpers --------------------------------------------------------------------------------------


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every path under ``root`` with its size and mtime (ns)."""
    if not root.exists():
        return {}
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")
    }


def line_of(path: Path, needle: str) -> int:
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if needle in line:
            return number
    raise AssertionError(f"{needle!r} not in {path}")


def clean(result: Result) -> None:
    assert "Traceback" not in result.stdout + result.stderr, result


def direct_steps(result: Result) -> list[str]:
    """The ``==> STEP ITEM`` lines direct mode prints, in order."""
    return [line[4:] for line in result.stderr.splitlines() if line.startswith("==> ")]


def no_orchestrator(cli: Cli) -> None:
    assert cli.daemon_pid() is None
    assert not cli.pid_file.exists()
    assert not cli.listening()


def wait_workflow(api: httpx.Client, workflow_id: str, timeout: float = 90) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        reply = api.get(f"/workflows/{workflow_id}", params={"steps": "true"})
        assert reply.status_code == 200, reply.text
        body: dict[str, Any] = reply.json()
        return body if body["status"] in WORKFLOW_DONE else None

    return wait_for(done, timeout=timeout, interval=0.1, message=f"workflow {workflow_id}")


def serves_page(url: str, hostname: str) -> bool:
    try:
        return f"<h1>{hostname}</h1>" in get(url).text
    except httpx.HTTPError:
        return False


def webserver_home(url: str, hostname: str) -> None:
    reply = get(url)
    assert reply.status_code == 200, reply.text
    assert f"<h1>{hostname}</h1>" in reply.text
    assert "Hello from acme/default" in reply.text


# -- check mode -----------------------------------------------------------------------------------


def test_check_changes_nothing(machine: Cli, workspace: Workspace) -> None:
    before = snapshot(workspace.path)

    planned = workspace.run("server", "create", "--check", "--json")

    assert planned.code == 0, planned
    data = planned.json()
    assert data["workflow"] == "server-create-default"
    actions = {(c["server"], c.get("taskserv")): c["action"] for c in data["changes"]}
    expected: dict[tuple[str, str | None], str] = {
        ("web-1", None): "create",
        ("web-2", None): "create",
        ("node-1", None): "create",
        ("web-1", "webserver"): "install",
        ("web-2", "webserver"): "install",
        **{("node-1", name): "install" for name in KUBERNETES_STACK},
    }
    assert actions == expected
    assert len(data["changes"]) == len(actions)
    human = workspace.run("cluster", "create", "web", "--check")
    assert human.code == 0, human
    assert "(check: nothing was changed)" in human.stdout
    assert "containerd" in human.stdout

    assert snapshot(workspace.path) == before
    assert workspace.server_entries() == []
    assert not workspace.state_file.exists()
    no_orchestrator(machine)
    assert leftover_processes(str(workspace.path)) == []


# -- direct mode ----------------------------------------------------------------------------------


def test_direct_server_create_serves_http_and_is_idempotent(
    machine: Cli, workspace: Workspace
) -> None:
    first = workspace.run("server", "create", "web-1", "--direct")

    assert first.code == 0, first
    assert direct_steps(first) == ["servers web-1", "taskserv-webserver web-1"]
    assert "web-1 created" in first.stderr
    assert "SSH answers on 10.177." in first.stderr
    root = workspace.server_dir("web-1")
    assert (root / "host.json").is_file()
    assert sorted(os.listdir(workspace.servers_root)) == ["web-1"]
    address = workspace.address("web-1")
    assert address.startswith("10.177.")
    urls = workspace.urls()
    assert urls == {"web-1": f"http://{address}:8080/"}
    webserver_home(urls["web-1"], "web-1")
    # The service runs in the host, bound to its address: not on this machine's loopback.
    assert not serves_page("http://127.0.0.1:8080/", "web-1")
    pid = workspace.remote("web-1", "cat", "/run/provisioning/webserver.pid")
    assert pid.code == 0, pid
    assert (
        not Path("/srv/www/index.html").exists()
        or "web-1" not in Path("/srv/www/index.html").read_text()
    )
    assert workspace.on_host("web-1", "/srv/www/index.html").is_file()
    recorded = workspace.installed("web-1")["webserver"]
    assert recorded["url"] == urls["web-1"]
    page = snapshot(workspace.on_host("web-1", "/srv/www"))

    again = workspace.run("server", "create", "web-1", "--direct")

    assert again.code == 0, again
    assert "web-1 already exists" in again.stderr
    assert "webserver 1.0.0 already on web-1: nothing changed" in again.stderr
    assert workspace.remote("web-1", "cat", "/run/provisioning/webserver.pid").stdout == pid.stdout
    assert workspace.installed("web-1")["webserver"] == recorded
    assert snapshot(workspace.on_host("web-1", "/srv/www")) == page
    webserver_home(urls["web-1"], "web-1")
    as_json = workspace.run("server", "create", "web-1", "--direct", "--json")
    assert as_json.json() == {
        "mode": "direct",
        "workflow": "server-create-default",
        "completed": True,
    }

    check = workspace.json("server", "create", "web-1", "--check")
    assert check["changes"] == [
        {"server": "web-1", "action": "exists"},
        {"server": "web-1", "taskserv": "webserver", "action": "installed"},
    ]

    listing = {row["hostname"]: row for row in workspace.json("server", "list")["servers"]}
    assert listing["web-1"]["state"] == "running"
    assert listing["web-1"]["address"] == address
    assert listing["web-1"]["ssh"]["address"] == address
    assert listing["web-1"]["ssh"]["user"] == "root"
    assert listing["web-1"]["taskservs"] == ["webserver"]
    assert listing["web-2"]["state"] == listing["node-1"]["state"] == "absent"
    no_orchestrator(machine)

    # The service stopped on the host: create starts it again (and says so).
    killed = workspace.remote("web-1", "sh", "-c", "kill $(cat /run/provisioning/webserver.pid)")
    assert killed.code == 0, killed
    wait_for(lambda: not answers(urls["web-1"]), timeout=15, message="the webserver stopped")
    restarted = workspace.run("server", "create", "web-1", "--direct")
    assert restarted.code == 0, restarted
    assert "reinstalling: service webserver is not running" in restarted.stderr
    webserver_home(urls["web-1"], "web-1")

    host_pids = workspace.remember_services()
    deleted = workspace.run("server", "delete", "web-1", "--direct", "--auto-approve")

    assert deleted.code == 0, deleted
    wait_for(lambda: not any(map(pid_alive, host_pids)), timeout=15, message="host gone")
    assert not answers(urls["web-1"])
    assert not root.exists()
    assert "web-1" not in workspace.state()["servers"]
    assert leftovers(workspace.path) == {}
    no_orchestrator(machine)


def test_taskserv_dependencies_install_once_in_order(workspace: Workspace) -> None:
    workspace.ok("server", "create", "node-1", "--no-taskservs", "--direct")
    homes = workspace.on_host("node-1", "/opt/provisioning/taskservs")
    assert not homes.exists()
    assert not workspace.installed("node-1")

    first = workspace.run("taskserv", "create", "kubernetes", "-s", "node-1", "--direct")

    assert first.code == 0, first
    steps = direct_steps(first)
    assert sorted(steps) == sorted(f"taskserv-{name} node-1" for name in KUBERNETES_STACK)
    ran = [step.split()[0].removeprefix("taskserv-") for step in steps]
    for name in KUBERNETES_STACK:
        for dependency in DEPENDS_ON[name]:
            assert ran.index(dependency) < ran.index(name), ran
    # From what the host wrote: every VERSION file, each after its dependencies' ones.
    written = {}
    for name in KUBERNETES_STACK:
        version_file = homes / name / "VERSION"
        assert version_file.read_text().strip() == VERSIONS[name]
        written[name] = version_file.stat().st_mtime_ns
    installed = workspace.installed("node-1")
    assert set(installed) == set(KUBERNETES_STACK)
    for name in KUBERNETES_STACK:
        assert installed[name]["version"] == VERSIONS[name]
        for dependency in DEPENDS_ON[name]:
            assert written[dependency] < written[name]
            assert installed[dependency]["installed_at"] < installed[name]["installed_at"]
    assert sorted(p.name for p in homes.iterdir()) == sorted(KUBERNETES_STACK)
    # The real binaries, from Debian's packages, run in the host (and are not here).
    for argv, version in (
        (["runc", "--version"], VERSIONS["runc"]),
        (["containerd", "--version"], VERSIONS["containerd"]),
        (["etcd", "--version"], VERSIONS["etcd"]),
    ):
        ran_there = workspace.remote("node-1", *argv)
        assert ran_there.code == 0, ran_there
        assert version in ran_there.stdout
    assert not Path("/usr/bin/etcd").exists()
    ctr = workspace.remote(
        "node-1", "ctr", "--address", "/run/containerd/containerd.sock", "version"
    )
    assert ctr.code == 0, ctr
    assert "Server:" in ctr.stdout
    # The rendered templates, in the host's /etc.
    address = workspace.address("node-1")
    runc = json.loads(workspace.on_host("node-1", "/etc/runc/config.json").read_text())
    assert runc == {"hostname": "node-1", "root": "/run/runc", "version": "1.1.5"}
    containerd = tomllib.loads(
        workspace.on_host("node-1", "/etc/containerd/config.toml").read_text()
    )
    assert containerd["root"] == "/var/lib/containerd"
    cri = containerd["plugins"]["io.containerd.grpc.v1.cri"]
    assert cri["containerd"]["snapshotter"] == "native"
    etcd = yaml.safe_load(workspace.on_host("node-1", "/etc/etcd/etcd.conf.yaml").read_text())
    assert etcd["name"] == "node-1"
    assert etcd["listen-client-urls"] == f"http://{address}:2379,http://127.0.0.1:2379"
    assert etcd["initial-cluster"] == f"node-1=http://{address}:2380"
    kubelet = yaml.safe_load(
        workspace.on_host("node-1", "/etc/kubernetes/kubelet.yaml").read_text()
    )
    assert kubelet["containerRuntimeEndpoint"] == "unix:///run/containerd/containerd.sock"
    assert kubelet["podCIDR"] == "10.244.0.0/16"
    before = snapshot(workspace.on_host("node-1", "/etc")), snapshot(homes)

    second = workspace.run("taskserv", "create", "kubernetes", "-s", "node-1", "--direct")

    assert second.code == 0, second
    for name in KUBERNETES_STACK:
        assert f"{name} {VERSIONS[name]} already on node-1: nothing changed" in second.stderr
    assert (snapshot(workspace.on_host("node-1", "/etc")), snapshot(homes)) == before
    assert workspace.installed("node-1") == installed
    check = workspace.json("taskserv", "create", "kubernetes", "-s", "node-1", "--check")
    assert {c["taskserv"]: c["action"] for c in check["changes"]} == dict.fromkeys(
        KUBERNETES_STACK, "installed"
    )

    # Remove undoes install: the files and the service go, the others stay.
    removed = workspace.run(
        "taskserv", "delete", "kubernetes", "-s", "node-1", "--direct", "--auto-approve"
    )
    assert removed.code == 0, removed
    assert not workspace.on_host("node-1", "/etc/kubernetes/kubelet.yaml").exists()
    assert not (homes / "kubernetes").exists()
    assert set(workspace.installed("node-1")) == {"runc", "containerd", "etcd"}
    removed = workspace.run(
        "taskserv", "delete", "etcd", "-s", "node-1", "--direct", "--auto-approve"
    )
    assert removed.code == 0, removed
    gone = workspace.remote(
        "node-1", "sh", "-c", "test -e /usr/bin/etcd || pgrep -x etcd || echo gone"
    )
    assert gone.stdout.strip() == "gone", gone


# -- a cluster on the orchestrator ----------------------------------------------------------------


def test_cluster_on_the_orchestrator(orchestrated: Workspace) -> None:
    ws = orchestrated
    submitted = ws.run("cluster", "create", "web", "--orchestrated")
    assert submitted.code == 0, submitted
    workflow_id = submitted_id(submitted)

    monitor = ws.run("workflow", "monitor", workflow_id, timeout=120)

    assert monitor.code == 0, monitor
    status = ws.json("workflow", "status", workflow_id)
    assert status["status"] == "completed", status
    times = step_times(status)
    assert set(times) == {"servers", *(f"taskserv-{name}" for name in DEPENDS_ON)}
    servers_done = times["servers"][1]
    for step, (started, _) in times.items():
        if step == "servers":
            continue
        name = step.removeprefix("taskserv-")
        assert started >= servers_done, (step, times)
        for dependency in DEPENDS_ON[name]:
            assert started >= times[f"taskserv-{dependency}"][1], (step, dependency, times)
    # Each taskserv once on each server that needs it.
    done = sorted(
        (task["result"]["taskserv"], task["result"]["hostname"])
        for step in status["steps"]
        if step["id"] != "servers"
        for task in step["tasks"]
    )
    wanted = sorted((name, host) for host, names in CLUSTER_TASKSERVS.items() for name in names)
    assert done == wanted
    assert sorted(t["result"]["hostname"] for t in task_items(status, "servers")) == sorted(
        CLUSTER_TASKSERVS
    )

    assert sorted(os.listdir(ws.servers_root)) == sorted(CLUSTER_TASKSERVS)
    listing = ws.json("server", "list")["servers"]
    assert {row["hostname"]: row["state"] for row in listing} == dict.fromkeys(
        CLUSTER_TASKSERVS, "running"
    )
    for host, names in CLUSTER_TASKSERVS.items():
        assert set(ws.installed(host)) == names
        for name in names:
            assert ws.on_host(host, f"/opt/provisioning/taskservs/{name}/VERSION").is_file()
    urls = ws.urls()
    assert set(urls) == {"web-1", "web-2"}
    assert urls["web-1"] != urls["web-2"]
    for host, url in urls.items():
        assert url == f"http://{ws.address(host)}:8080/"
        webserver_home(url, host)
    # etcd on the three servers is one cluster of three members.
    health = ws.remote(
        "node-1",
        "etcdctl",
        "--endpoints",
        f"http://{ws.address('node-1')}:2379",
        "endpoint",
        "health",
        "--cluster",
    )
    assert health.code == 0, health
    # etcdctl says it on stderr.
    assert (health.stdout + health.stderr).count("is healthy") == 3, health
    pids = ws.remember_services()
    assert len(pids) == 3
    assert all(pid_alive(pid) for pid in pids)

    deleted = ws.run("cluster", "delete", "web", "--wait", "--auto-approve")

    assert deleted.code == 0, deleted
    submitted_id(deleted)
    assert os.listdir(ws.servers_root) == []
    wait_for(lambda: not any(pid_alive(p) for p in pids), timeout=15, message="hosts gone")
    assert leftovers(ws.path) == {}
    assert not any(answers(url) for url in urls.values())
    assert {row["state"] for row in ws.json("server", "list")["servers"]} == {"absent"}


# -- the seed's endpoints -------------------------------------------------------------------------


def test_seed_endpoints_end_to_end(api: httpx.Client, orchestrated: Workspace) -> None:
    ws = orchestrated
    params: dict[str, Any] = {"workspace": str(ws.path)}
    base = {"infra": "default", "params": params}

    servers = api.post("/workflows/servers/create", json=base)

    assert servers.status_code == 201, servers.text
    body = servers.json()
    assert body["status"] == "queued"
    # 3 servers, webserver on 2 of them, the kubernetes stack (4) on node-1.
    assert body["tasks"] == 9
    final = wait_workflow(api, body["workflow_id"])
    assert final["status"] == "completed", final
    assert sorted(os.listdir(ws.servers_root)) == sorted(CLUSTER_TASKSERVS)
    assert set(ws.installed("web-1")) == {"webserver"}
    assert set(ws.installed("node-1")) == set(KUBERNETES_STACK)
    for host, url in ws.urls().items():
        webserver_home(url, host)

    taskserv = api.post(
        "/workflows/taskserv/create",
        json={
            "infra": "default",
            "params": {**params, "taskserv": "etcd", "servers": ["web-1"]},
        },
    )

    assert taskserv.status_code == 201, taskserv.text
    assert taskserv.json()["tasks"] == 1
    final = wait_workflow(api, taskserv.json()["workflow_id"])
    assert final["status"] == "completed", final
    etcd_version = ws.on_host("web-1", "/opt/provisioning/taskservs/etcd/VERSION")
    assert etcd_version.read_text().strip() == VERSIONS["etcd"]
    assert set(ws.installed("web-1")) == {"webserver", "etcd"}
    assert "etcd" not in ws.installed("web-2")

    cluster = api.post(
        "/workflows/cluster/create",
        json={"infra": "default", "params": {**params, "cluster": "web"}},
    )

    assert cluster.status_code == 201, cluster.text
    final = wait_workflow(api, cluster.json()["workflow_id"])
    assert final["status"] == "completed", final
    created = [t["result"]["created"] for t in task_items(final, "servers")]
    assert created == [False, False, False]
    for host, names in CLUSTER_TASKSERVS.items():
        assert set(ws.installed(host)) == names


@pytest.mark.parametrize(
    ("path", "params", "expected"),
    [
        ("servers", {}, "workspace"),
        ("servers", {"workspace": "acme"}, "is not a workspace folder"),
        ("servers", {"workspace": "/"}, "is not a workspace folder"),
        ("cluster", {"cluster": "nope"}, "no cluster 'nope' (known: web)"),
        ("cluster", {}, "params.cluster"),
        ("taskserv", {"taskserv": "nope"}, "unknown taskserv 'nope'"),
        ("taskserv", {}, "params.taskserv"),
        ("servers", {"servers": ["web-9"]}, "no server 'web-9'"),
        ("servers", {"servers": ["$(touch pwned)"]}, "no server"),
        ("servers", {"colour": "red"}, "colour"),
    ],
    ids=[
        "missing-workspace",
        "relative-workspace",
        "not-a-workspace",
        "unknown-cluster",
        "no-cluster",
        "unknown-taskserv",
        "no-taskserv",
        "unknown-server",
        "hostile-server",
        "unknown-param",
    ],
)
def test_seed_endpoints_refuse_bad_bodies(
    api: httpx.Client, idle: Workspace, path: str, params: dict[str, Any], expected: str
) -> None:
    ws = idle
    workflows = api.get("/workflows").json()["total"]
    tasks = api.get("/tasks").json()["total"]
    body: dict[str, Any] = {"infra": "default", "params": {"workspace": str(ws.path), **params}}
    if path == "servers" and not params:
        body["params"] = {}

    reply = api.post(f"/workflows/{path}/create", json=body)

    assert reply.status_code == 422, reply.text
    assert expected in reply.text
    assert api.get("/workflows").json()["total"] == workflows
    assert api.get("/tasks").json()["total"] == tasks
    assert ws.server_entries() == []


@pytest.mark.parametrize(
    ("infra", "expected"),
    [("../default", "RFC 1123"), ("nope", "no infra 'nope'"), ("", "infra")],
)
def test_seed_endpoints_refuse_a_bad_infra(
    api: httpx.Client, idle: Workspace, infra: str, expected: str
) -> None:
    workflows = api.get("/workflows").json()["total"]
    body = {"infra": infra, "params": {"workspace": str(idle.path)}}

    reply = api.post("/workflows/servers/create", json=body)

    assert reply.status_code == 422, reply.text
    assert expected in reply.text
    assert api.get("/workflows").json()["total"] == workflows
    assert idle.server_entries() == []


# -- execution modes around server create ---------------------------------------------------------


def test_server_create_auto_starts_the_orchestrator(machine: Cli, workspace: Workspace) -> None:
    no_orchestrator(machine)

    created = workspace.run("server", "create", "web-1", "--no-taskservs", "--wait")

    assert created.code == 0, created
    assert "Starting orchestrator" in created.stderr
    submitted_id(created)
    assert machine.daemon_pid() is not None
    assert machine.healthy()
    assert (workspace.server_dir("web-1") / "host.json").is_file()
    assert workspace.state()["servers"]["web-1"]["status"] == "running"


def test_server_create_falls_back_to_direct_with_a_notice(
    machine: Cli, workspace: Workspace
) -> None:
    created = workspace.run(
        "server", "create", "web-1", "--no-taskservs", env={**NO_AUTO_START, **FALLBACK}
    )

    assert created.code == 0, created
    notices = created.lines("notice:")
    assert len(notices) == 1, created
    assert "orchestrator.auto_start = false" in notices[0]
    assert "running server.create directly (orchestrator.fallback_to_direct)" in notices[0]
    assert "Starting orchestrator" not in created.stderr
    assert "Workflow submitted" not in created.stdout
    assert direct_steps(created) == ["servers web-1"]
    assert (workspace.server_dir("web-1") / "host.json").is_file()
    no_orchestrator(machine)


def test_server_create_without_fallback_exits_3_and_does_nothing(
    machine: Cli, workspace: Workspace
) -> None:
    refused = workspace.run("server", "create", env={**NO_AUTO_START, **NO_FALLBACK})

    assert refused.code == 3, refused
    clean(refused)
    assert "provisioning orchestrator start --daemon" in refused.stderr
    assert workspace.server_entries() == []
    assert not workspace.state_file.exists()
    no_orchestrator(machine)


# -- contract violations and hostile names --------------------------------------------------------


@pytest.mark.parametrize(
    "mode", [["--direct"], ["--orchestrated"], []], ids=["direct", "orchestrated", "auto"]
)
def test_a_contract_violation_exits_2_naming_file_and_field(
    machine: Cli, workspace: Workspace, mode: list[str]
) -> None:
    workspace.edit_infra('hostname = "web-1"', 'hostname = "Web_1"')
    line = line_of(workspace.infra_file, '"Web_1"')

    refused = workspace.run("server", "create", *mode)

    assert refused.code == 2, refused
    clean(refused)
    assert f"{workspace.infra_file}:{line}:" in refused.stderr
    assert "contract broken by the value of `hostname`" in refused.stderr
    assert "RFC 1123 label" in refused.stderr
    assert workspace.server_entries() == []
    assert not workspace.state_file.exists()
    no_orchestrator(machine)


@pytest.mark.parametrize("template", ["a; touch {marker}", "$(touch {marker})", "`touch {marker}`"])
def test_a_hostile_hostname_never_runs(
    machine: Cli, workspace: Workspace, tmp_path: Path, template: str
) -> None:
    marker = tmp_path / "pwned"
    hostile = template.format(marker=marker)
    workspace.edit_infra('hostname = "web-2"', f"hostname = {json.dumps(hostile)}")

    for args in (["server", "create", "--direct"], ["cluster", "create", "web", "--direct"]):
        refused = workspace.run(*args)
        assert refused.code == 2, refused
        clean(refused)
        assert "RFC 1123 label" in refused.stderr

    workspace.infra_file.write_text(workspace.template)
    as_argument = workspace.run("server", "create", hostile, "--direct")
    assert as_argument.code == 2, as_argument
    assert "no server" in as_argument.stderr

    assert not marker.exists()
    assert workspace.server_entries() == []
    no_orchestrator(machine)


def test_server_delete_of_a_path_deletes_nothing(workspace: Workspace, tmp_path: Path) -> None:
    workspace.ok("server", "create", "web-1", "--no-taskservs", "--direct")
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious.txt").write_text("keep me")
    escaping = os.path.relpath(victim, workspace.servers_root)
    assert escaping == "../../../../victim"

    refused = workspace.run("server", "delete", escaping, "--direct", "--auto-approve")

    assert (victim / "precious.txt").exists()
    assert refused.code == 2, refused


# -- provider errors ------------------------------------------------------------------------------

HUGE = (
    '{ hostname = "web-2", provider = "local", plan = "small"',
    '{ hostname = "web-2", provider = "local", plan = "huge"',
)
PROVIDER_ERROR = "unknown plan 'huge'"


def test_a_provider_error_in_direct_mode(machine: Cli, workspace: Workspace) -> None:
    workspace.edit_infra(*HUGE)

    failed = workspace.run("server", "create", "web-2", "--direct")

    assert failed.code == 1, failed
    clean(failed)
    assert "provider error: invalid: creating server web-2: unknown plan 'huge'" in failed.stderr
    assert "local plans: small, medium, large" in failed.stderr
    assert direct_steps(failed) == ["servers web-2"]
    assert not workspace.server_dir("web-2").exists()
    assert not workspace.state_file.exists() or "web-2" not in workspace.state()["servers"]
    no_orchestrator(machine)


def test_a_provider_error_on_the_orchestrator(orchestrated: Workspace) -> None:
    ws = orchestrated
    ws.edit_infra(*HUGE)

    failed = ws.run("server", "create", "web-2", "--orchestrated", "--wait")

    assert failed.code == 1, failed
    clean(failed)
    status = ws.json("workflow", "status", submitted_id(failed))
    assert status["status"] != "completed"
    assert status["status"] in WORKFLOW_DONE
    [task] = task_items(status, "servers")
    assert task["status"] == "failed", task
    assert PROVIDER_ERROR in task["error"]
    assert "creating server web-2" in task["error"]
    assert all(t["started_at"] is None for t in task_items(status, "taskserv-webserver"))
    assert not ws.server_dir("web-2").exists()


def test_a_workspace_taskserv_in_extensions_is_found_and_run_like_the_platforms(
    orchestrated: Workspace,
) -> None:
    own = orchestrated.path / "extensions" / "taskservs" / "greeter"
    (own / "templates" / "etc" / "greeter").mkdir(parents=True)
    (own / "taskserv.toml").write_text(
        'name = "greeter"\nversion = "0.1.0"\ndepends_on = ["runc"]\n'
        '[settings]\ngreeting = "hello"\n'
    )
    (own / "templates" / "etc" / "greeter" / "greeting.txt.j2").write_text(
        "{{ settings.greeting }} from {{ server.hostname }}\n"
    )
    # The workspace's own Nushell module, with the platform's shared steps.
    (own / "taskserv.nu").write_text(
        "use taskserv_steps.nu [install-taskserv remove-taskserv]\n"
        "export def install [params: record] { install-taskserv $params }\n"
        "export def remove [params: record] { remove-taskserv $params }\n"
    )
    catalog = orchestrated.json("taskserv", "list", "--available")["taskservs"]
    assert {"name": "greeter", "source": "workspace"}.items() <= next(
        t for t in catalog if t["name"] == "greeter"
    ).items()
    orchestrated.ok("server", "create", "node-1", "--no-taskservs", "--direct")
    created = orchestrated.ok("taskserv", "create", "greeter", "-s", "node-1", "--wait")
    assert "Workflow submitted:" in created.stdout
    greeting = orchestrated.remote("node-1", "cat", "/etc/greeter/greeting.txt")
    assert greeting.stdout == "hello from node-1\n", greeting
    installed = orchestrated.installed("node-1")
    assert set(installed) == {"greeter", "runc"}
