"""Acceptance fixtures: the real ``provisioning-orchestrator`` console script as a
subprocess, on a free loopback port, with its own data dir and configuration."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import wait_for

BIN = Path(sys.executable).parent
TERMINAL = {"completed", "failed", "cancelled", "timed_out"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return handle.read().decode(errors="replace").split("\0")
    except OSError:
        return []


def supervisor_pids(data_dir: Path) -> list[int]:
    """Processes running ``python -m provisioning.execution.supervisor DATA_DIR ...``
    (the data dir's task supervisor)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        argv = _cmdline(int(entry))
        ours = "provisioning.execution.supervisor" in argv and str(data_dir) in argv
        if ours and pid_alive(int(entry)):
            found.append(int(entry))
    return found


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, str):
        return json.dumps(value)
    return repr(value)


class Daemon:
    """One orchestrator process under test."""

    def __init__(
        self, root: Path, sections: dict[str, dict[str, Any]] | None = None, **executor: Any
    ) -> None:
        self.root = root
        self.data_dir = root / "data"
        self.lib = root / "nulib"
        self.lib.mkdir(exist_ok=True)
        self.pylib = root / "pylib"
        self.pylib.mkdir(exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config = root / "orchestrator.toml"
        self.log_path = root / "daemon.log"
        config: dict[str, dict[str, Any]] = {
            "server": {"host": "127.0.0.1", "port": self.port},
            "storage": {"data_dir": str(self.data_dir)},
            "nushell": {"provisioning_lib": str(self.lib)},
            "python": {"path": [str(self.pylib)]},
            "executor": {"max_concurrent_tasks": 4, "kill_grace_seconds": 1, **executor},
        }
        for name, keys in (sections or {}).items():
            config[name] = {**config.get(name, {}), **keys}
        self.config.write_text(
            "".join(
                f"[{name}]\n" + "".join(f"{k} = {_toml(v)}\n" for k, v in keys.items())
                for name, keys in config.items()
            )
        )
        self.env = {
            **os.environ,
            "HOME": str(root / "home"),
            "XDG_CONFIG_HOME": str(root / "home" / ".config"),
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "PROVISIONING_SYSTEM_CONFIG": str(root / "no-system.toml"),
        }
        self.env.pop("PROVISIONING_CONFIG", None)
        self.proc: subprocess.Popen[bytes] | None = None
        self._client: httpx.Client | None = None

    # -- lifecycle ----------------------------------------------------------------------

    def start(self, *args: str, wrapper: tuple[str, ...] = ()) -> Daemon:
        """Start it (``args``: extra flags; ``wrapper``: a command it runs under)."""
        log = open(self.log_path, "ab")  # noqa: SIM115 - kept open for the child's life
        self.proc = subprocess.Popen(
            [*wrapper, str(BIN / "provisioning-orchestrator"), "--config", str(self.config), *args],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        wait_for(self._healthy, timeout=30, message=f"orchestrator health\n{self.log()}")
        return self

    def _healthy(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"orchestrator exited with {self.proc.returncode}:\n{self.log()}")
        try:
            return httpx.get(self.url + "/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.proc.wait(timeout=timeout)
        if self._client is not None:
            self._client.close()
            self._client = None
        return code

    def kill9(self) -> None:
        self.stop(signal.SIGKILL)

    # -- the task supervisors it started ------------------------------------------------

    def supervisors(self) -> list[int]:
        """Live supervisor processes of this data dir (one, while any runs)."""
        return supervisor_pids(self.data_dir)

    def stop_supervisors(self, timeout: float = 20) -> None:
        """Stop what outlived the daemon and wait until it is gone: on SIGUSR2 the
        supervisor ends every task's tree, saves their status and leaves."""
        for pid in self.supervisors():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGUSR2)
        wait_for(lambda: not self.supervisors(), timeout=timeout, message="supervisors gone")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    # -- API ----------------------------------------------------------------------------

    @property
    def token(self) -> str:
        return (self.data_dir / "api-token").read_text().strip()

    @property
    def http(self) -> httpx.Client:
        if self._client is None:
            self._client = httpx.Client(
                base_url=self.url, headers={"Authorization": f"Bearer {self.token}"}, timeout=10
            )
        return self._client

    def submit(self, run: dict[str, Any], **fields: Any) -> str:
        body = {"name": fields.pop("name", "t"), "run": run, **fields}
        response = self.http.post("/tasks", json=body)
        assert response.status_code == 201, response.text
        assert response.json()["status"] == "queued"
        return str(response.json()["task_id"])

    def task(self, task_id: str) -> dict[str, Any]:
        response = self.http.get(f"/tasks/{task_id}")
        assert response.status_code == 200, response.text
        return dict(response.json())

    def wait_status(
        self, task_id: str, statuses: set[str] | None = None, timeout: float = 30
    ) -> dict[str, Any]:
        wanted = statuses or TERMINAL

        def reached() -> dict[str, Any] | None:
            task = self.task(task_id)
            return task if task["status"] in wanted else None

        return wait_for(reached, timeout=timeout, message=f"task {task_id} in {wanted}")

    def write_nu(self, name: str, source: str) -> str:
        path = self.lib / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source))
        return name

    def write_py(self, module: str, source: str) -> str:
        (self.pylib / f"{module}.py").write_text(textwrap.dedent(source))
        return module


@pytest.fixture(scope="session", autouse=True)
def _nu_available() -> None:
    if shutil.which("nu", path=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}") is None:
        pytest.fail("the nu binary is missing: run ./scripts/setup.sh")


@pytest.fixture
def make_daemon(tmp_path: Path) -> Iterator[Any]:
    started: list[Daemon] = []

    def make(sections: dict[str, dict[str, Any]] | None = None, **executor: Any) -> Daemon:
        root = tmp_path / f"d{len(started)}"
        root.mkdir()
        daemon = Daemon(root, sections, **executor)
        started.append(daemon)
        return daemon

    yield make
    for daemon in started:
        if daemon.proc is not None and daemon.proc.poll() is None:
            daemon.stop(signal.SIGKILL)
        daemon.stop_supervisors()


@pytest.fixture
def daemon(make_daemon: Any) -> Daemon:
    started: Daemon = make_daemon().start()
    return started
