"""The daemon under systemd (issue 13, item 7): the packaged unit is ``Type=notify``
and the daemon says ``READY=1`` on ``$NOTIFY_SOCKET`` once its API answers, and
``STOPPING=1`` on SIGTERM. A datagram socket of the test stands in for systemd's."""

from __future__ import annotations

import configparser
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx

import provisioning
from tests.acceptance.conftest import BIN, free_port

UNIT = Path(provisioning.__file__).parent / "systemd" / "provisioning-orchestrator.service"


def test_unit_is_type_notify_and_runs_the_console_script() -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.read_string(UNIT.read_text(encoding="utf-8"))
    assert unit["Service"]["Type"] == "notify"
    assert unit["Service"]["ExecStart"].split()[0].endswith("/provisioning-orchestrator")
    assert unit["Install"]["WantedBy"] == "multi-user.target"


def _datagrams(sock: socket.socket, until: str, deadline: float) -> list[str]:
    seen: list[str] = []
    while time.monotonic() < deadline:
        sock.settimeout(max(deadline - time.monotonic(), 0.01))
        try:
            seen.append(sock.recv(4096).decode())
        except TimeoutError:
            break
        if any(until in message.splitlines() for message in seen):
            break
    return seen


def test_daemon_notifies_readiness_and_stopping(tmp_path: Path) -> None:
    path = tmp_path / "notify.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(path))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROVISIONING_")}
    env.update(
        HOME=str(tmp_path),
        XDG_CONFIG_HOME=str(tmp_path / ".config"),
        PROVISIONING_SYSTEM_CONFIG=str(tmp_path / "none.toml"),
        NOTIFY_SOCKET=str(path),
    )
    daemon = subprocess.Popen(
        [
            str(BIN / "provisioning-orchestrator"),
            "--port",
            str(port),
            "--data-dir",
            str(tmp_path / "data"),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        ready = _datagrams(listener, "READY=1", time.monotonic() + 60)
        assert any("READY=1" in m.splitlines() for m in ready), ready
        assert f"MAINPID={daemon.pid}" in "\n".join(ready)
        # Ready means answering: no retry loop needed here.
        assert httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).status_code == 200
        daemon.send_signal(signal.SIGTERM)
        stopping = _datagrams(listener, "STOPPING=1", time.monotonic() + 30)
        assert any("STOPPING=1" in m.splitlines() for m in stopping), stopping
        assert daemon.wait(timeout=60) == 0
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
        listener.close()
