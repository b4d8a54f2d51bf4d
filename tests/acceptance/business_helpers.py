"""Helpers of the business acceptance tests: a workspace made by the real
``provisioning workspace init`` inside an isolated :class:`~tests.acceptance.cli_env.Cli`
machine, what its local servers hold on disk, and the processes a test leaves behind.

Every service a workspace's servers ran is remembered (``run/*.pid``) so teardown can
prove each one is gone; :func:`leftover_processes` finds any process whose command
line or environment mentions a test's folder (services, orchestrators, tasks).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from tests.acceptance.cli_env import Cli, Result
from tests.acceptance.conftest import pid_alive
from tests.conftest import wait_for

INFRA = "default"
WORKFLOW_DONE = frozenset({"completed", "failed", "cancelled", "rolled_back", "rollback_failed"})
# What the platform catalog says each taskserv depends on (taskservs/*/taskserv.toml).
DEPENDS_ON: dict[str, tuple[str, ...]] = {
    "runc": (),
    "containerd": ("runc",),
    "etcd": (),
    "kubernetes": ("containerd", "etcd"),
    "webserver": (),
}
VERSIONS = {
    "runc": "1.1.5",
    "containerd": "1.6.20",
    "etcd": "3.4.23",
    "kubernetes": "1.29.2",
    "webserver": "1.0.0",
}
# The template's cluster "web": servers and the taskservs each ends up with.
CLUSTER_TASKSERVS = {
    "web-1": {"runc", "containerd", "etcd", "webserver"},
    "web-2": {"runc", "containerd", "etcd", "webserver"},
    "node-1": {"runc", "containerd", "etcd", "kubernetes"},
}


class Workspace:
    """A workspace created by ``provisioning workspace init`` on the machine ``cli``."""

    def __init__(self, cli: Cli, folder: Path, name: str = "acme") -> None:
        self.cli = cli
        self.path = folder / name
        created = cli.run("workspace", "init", name, "--path", str(self.path))
        assert created.code == 0, created
        self.infra_file = self.path / "infra" / INFRA / "infra.ncl"
        self.template = self.infra_file.read_text()
        self.service_pids: set[int] = set()

    # -- running the CLI in it ----------------------------------------------------------------

    def run(
        self, *args: str, env: Mapping[str, str | None] | None = None, timeout: float = 90
    ) -> Result:
        """``provisioning ARGS`` with the workspace as the working directory."""
        result = self.cli.run(*args, env=env, cwd=self.path, timeout=timeout)
        self.remember_services()
        return result

    def ok(self, *args: str, env: Mapping[str, str | None] | None = None) -> Result:
        result = self.run(*args, env=env)
        assert result.code == 0, result
        return result

    def json(self, *args: str) -> Any:
        return self.ok(*args, "--json").json()

    # -- the infra file ---------------------------------------------------------------------------

    def edit_infra(self, old: str, new: str) -> None:
        text = self.infra_file.read_text()
        assert old in text, f"{old!r} not in {self.infra_file}"
        self.infra_file.write_text(text.replace(old, new, 1))

    # -- what exists on disk ----------------------------------------------------------------------

    @property
    def servers_root(self) -> Path:
        return self.path / "runtime" / "servers" / INFRA

    def server_dir(self, hostname: str) -> Path:
        return self.servers_root / hostname

    def on_host(self, hostname: str, path: str) -> Path:
        """Where ``path`` of the lab host's overlaid folders lives on this machine (the
        upper layer: what the host wrote)."""
        return self.server_dir(hostname) / "layers" / path.lstrip("/")

    def remote(self, hostname: str, *argv: str) -> Result:
        """``provisioning server ssh HOSTNAME -- ARGV`` (over SSH, in the host)."""
        return self.run("server", "ssh", hostname, "--", *argv)

    def address(self, hostname: str) -> str:
        found: str = self.state()["servers"][hostname]["address"]
        return found

    def server_entries(self) -> list[str]:
        """Everything under ``runtime/servers`` (any infra), as relative paths."""
        base = self.path / "runtime" / "servers"
        return sorted(str(p.relative_to(base)) for p in base.rglob("*")) if base.exists() else []

    @property
    def state_file(self) -> Path:
        return self.path / "runtime" / "state" / f"{INFRA}.json"

    def state(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.state_file.read_text())
        return data

    def installed(self, hostname: str) -> dict[str, Any]:
        found: dict[str, Any] = self.state()["servers"].get(hostname, {}).get("taskservs", {})
        return found

    def urls(self) -> dict[str, str]:
        """hostname -> webserver URL, from ``taskserv list --json``."""
        rows = self.json("taskserv", "list")["taskservs"]
        return {row["server"]: row["url"] for row in rows if row["taskserv"] == "webserver"}

    def remember_services(self) -> set[int]:
        """The PID 1 of every lab host of the workspace (their services run inside:
        they die with it), remembered."""
        found = set()
        if self.servers_root.exists():
            for host_file in self.servers_root.glob("*/host.json"):
                with contextlib.suppress(OSError, ValueError, KeyError):
                    found.add(int(json.loads(host_file.read_text())["pid"]))
        self.service_pids |= found
        return found

    def live_services(self) -> set[int]:
        return {pid for pid in self.service_pids if pid_alive(pid)}

    # -- teardown -----------------------------------------------------------------------------------

    def teardown(self) -> None:
        """Delete every server directly (stopping its services) and check that every
        service ever seen is dead; survivors are killed whatever happened, then reported."""
        self.remember_services()
        problems = []
        try:
            if self.infra_file.read_text() != self.template:
                self.infra_file.write_text(self.template)
            if self.servers_root.exists() and any(self.servers_root.iterdir()):
                deleted = self.run("server", "delete", "--direct", "--auto-approve")
                if deleted.code != 0:
                    problems.append(f"teardown delete failed:\n{deleted}")
            try:
                wait_for(lambda: not self.live_services(), timeout=15, message="services to stop")
            except AssertionError:
                problems.append(f"services left running after delete: {self.live_services()}")
        finally:
            kill_groups(self.live_services())
        if problems:
            raise AssertionError("\n".join(problems))


# -- processes ------------------------------------------------------------------------------------


def leftover_processes(marker: str) -> list[int]:
    """Live processes (not this one) whose command line or environment mentions a path
    under the folder ``marker``."""
    needle = (marker.rstrip("/") + "/").encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        pid = int(entry.name)
        try:
            seen = (entry / "cmdline").read_bytes() + (entry / "environ").read_bytes()
        except OSError:
            continue
        if needle in seen and pid_alive(pid):
            found.append(pid)
    return found


def kill_all(pids: set[int] | list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def kill_groups(pids: set[int]) -> None:
    """SIGKILL the process groups led by ``pids`` (services lead their own)."""
    for pid in pids:
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            kill_all([pid])
    wait_for(lambda: not any(pid_alive(p) for p in pids), timeout=10, message="killed services")


def assert_no_leftover(marker: str, timeout: float = 15) -> None:
    """Wait until no process mentions ``marker``; kill and fail if some remain."""
    try:
        wait_for(lambda: not leftover_processes(marker), timeout=timeout, message="no leftovers")
    except AssertionError:
        left = leftover_processes(marker)
        described = {pid: _cmdline(pid) for pid in left}
        kill_all(left)
        raise AssertionError(f"processes left behind: {described}") from None


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return "?"


def stop_machine(cli: Cli) -> None:
    """``provisioning orchestrator stop`` on the machine, then make sure it is gone."""
    stopped = None
    try:
        cli.remember_daemon()
        if cli.daemon_pid() is not None:
            stopped = cli.run("orchestrator", "stop")
    finally:
        cli.cleanup()
    assert stopped is None or stopped.code == 0, stopped


# -- HTTP -----------------------------------------------------------------------------------------


def get(url: str) -> httpx.Response:
    return httpx.get(url, timeout=5)


def answers(url: str) -> bool:
    try:
        return get(url).status_code == 200
    except httpx.HTTPError:
        return False


# -- workflows ------------------------------------------------------------------------------------


def submitted_id(result: Result) -> str:
    lines = result.lines("Workflow submitted: ", "stdout")
    assert len(lines) == 1, result
    return lines[0].split("Workflow submitted: ", 1)[1].split()[0]


def when(value: str) -> datetime:
    return datetime.fromisoformat(value)


def step_times(workflow: dict[str, Any]) -> dict[str, tuple[datetime, datetime]]:
    """step id -> (first task start, last task end)."""
    times = {}
    for step in workflow["steps"]:
        tasks = step["tasks"]
        assert tasks, step
        assert all(t["started_at"] and t["completed_at"] for t in tasks), step
        times[step["id"]] = (
            min(when(t["started_at"]) for t in tasks),
            max(when(t["completed_at"]) for t in tasks),
        )
    return times


def task_items(workflow: dict[str, Any], step_id: str) -> list[dict[str, Any]]:
    for step in workflow["steps"]:
        if step["id"] == step_id:
            tasks: list[dict[str, Any]] = step["tasks"]
            return tasks
    raise AssertionError(f"no step {step_id} in {[s['id'] for s in workflow['steps']]}")
