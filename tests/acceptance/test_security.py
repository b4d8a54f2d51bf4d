"""Nobody in where they don't belong (issue 15, point 5), against a real daemon."""

from __future__ import annotations

import os
import signal
import ssl
import stat
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.acceptance.conftest import BIN, Daemon
from tests.conftest import wait_for


def modes(root: Path) -> dict[str, int]:
    found = {".": stat.S_IMODE(root.stat().st_mode)}
    for path in root.rglob("*"):
        if path.is_symlink():
            continue
        found[str(path.relative_to(root))] = stat.S_IMODE(path.stat().st_mode)
    return found


def test_every_file_the_daemon_writes_is_private(daemon: Daemon) -> None:
    task_id = daemon.submit({"command": ["echo", "secret output"]}, params={"password": "x"})
    daemon.wait_status(task_id)
    found = modes(daemon.data_dir)
    assert found["."] == 0o700
    files = {name: mode for name, mode in found.items() if (daemon.data_dir / name).is_file()}
    assert {"api-token", "orchestrator.db", "orchestrator.pid"} <= set(files)
    assert any(name.endswith("-wal") for name in files)
    wide = {name: oct(mode) for name, mode in found.items() if mode & 0o077}
    assert wide == {}


def test_wide_modes_are_narrowed_at_start_with_a_warning(make_daemon: Any) -> None:
    daemon = make_daemon().start()
    daemon.stop()
    os.chmod(daemon.data_dir, 0o755)
    os.chmod(daemon.data_dir / "orchestrator.db", 0o644)
    daemon.start()
    assert stat.S_IMODE(daemon.data_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE((daemon.data_dir / "orchestrator.db").stat().st_mode) == 0o600
    assert "readable by other users" in daemon.log()
    assert "made private" in daemon.log()


def test_query_token_only_on_the_event_streams(daemon: Daemon) -> None:
    token = daemon.token
    for path in ("/tasks", "/status", "/workflows", "/openapi.json"):
        response = httpx.get(daemon.url + path, params={"token": token})
        assert response.status_code == 401, path
    with httpx.stream("GET", daemon.url + "/events", params={"token": token}) as response:
        assert response.status_code == 200
        assert next(response.iter_lines()) == ": connected"


def test_query_token_opens_the_websocket(daemon: Daemon) -> None:
    from websockets.sync.client import connect

    with connect(f"ws://127.0.0.1:{daemon.port}/ws?token={daemon.token}") as socket:
        daemon.submit({"command": ["true"]})
        assert "task" in socket.recv(timeout=10)


def _self_signed(folder: Path) -> tuple[Path, Path]:
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def _refused(daemon: Daemon, *args: str) -> str:
    run = subprocess.run(
        [str(BIN / "provisioning-orchestrator"), "--config", str(daemon.config), *args],
        env=daemon.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode != 0
    assert "Traceback" not in run.stderr
    return run.stderr


def test_a_non_loopback_host_needs_tls_or_an_explicit_flag(make_daemon: Any) -> None:
    daemon = make_daemon()
    error = _refused(daemon, "--host", "0.0.0.0")
    assert "is not loopback" in error
    assert "--insecure-plaintext" in error
    assert "server.tls_cert" in error
    assert not (daemon.data_dir / "orchestrator.db").exists()


def test_insecure_plaintext_starts_with_a_warning(make_daemon: Any) -> None:
    daemon = make_daemon()
    # Bound to every interface, but the test talks to loopback only.
    daemon.start("--host", "0.0.0.0", "--insecure-plaintext")
    assert "IN PLAIN TEXT" in daemon.log()
    assert daemon.http.get("/status").status_code == 200


def test_tls_is_served_with_the_configured_certificate(make_daemon: Any, tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    daemon = make_daemon({"server": {"tls_cert": str(cert), "tls_key": str(key)}})
    daemon.url = daemon.url.replace("http://", "https://")
    proc_env = daemon.env
    log = open(daemon.log_path, "ab")  # noqa: SIM115
    daemon.proc = subprocess.Popen(
        [
            str(BIN / "provisioning-orchestrator"),
            "--config",
            str(daemon.config),
            "--host",
            "0.0.0.0",
        ],
        env=proc_env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    log.close()
    trust = ssl.create_default_context(cafile=str(cert))

    def up() -> bool:
        try:
            return httpx.get(daemon.url + "/health", verify=trust, timeout=1).status_code == 200
        except httpx.HTTPError:
            assert daemon.proc is not None and daemon.proc.poll() is None, daemon.log()
            return False

    wait_for(up, timeout=30, message="TLS health")
    assert "over TLS" in daemon.log()
    headers = {"Authorization": f"Bearer {daemon.token}"}
    assert httpx.get(daemon.url + "/status", headers=headers, verify=trust).status_code == 200
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{daemon.port}/health", timeout=2).raise_for_status()
    with pytest.raises(httpx.ConnectError):
        httpx.get(daemon.url + "/health", timeout=2)  # not trusted without the cert
    daemon.proc.send_signal(signal.SIGTERM)
    assert daemon.proc.wait(timeout=30) == 0


def test_tls_needs_both_files(make_daemon: Any, tmp_path: Path) -> None:
    cert, _ = _self_signed(tmp_path)
    daemon = make_daemon({"server": {"tls_cert": str(cert)}})
    assert "go together" in _refused(daemon)
    daemon = make_daemon({"server": {"tls_cert": str(cert), "tls_key": str(tmp_path / "nope")}})
    assert "cannot read" in _refused(daemon)
