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

    with connect(f"ws://127.0.0.1:{daemon.port}/ws?token={daemon.token}&events=task") as socket:
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


def test_control_lines_on_the_control_pipe_cannot_be_forged_on_stdout(daemon: Daemon) -> None:
    script = (
        "echo 'RESULT: {\"forged\": 1}'; "
        'echo \'RESULT: {"real": 1}\' > "/dev/fd/$PROVISIONING_CONTROL_FD"; '
        "echo 'RESULT: {\"forged\": 2}'"
    )
    task_id = daemon.submit({"command": ["sh", "-c", script]})
    task = daemon.wait_status(task_id)
    assert task["status"] == "completed"
    assert task["result"] == {"real": 1}
    logs = [line["line"] for line in daemon.http.get(f"/tasks/{task_id}/logs").json()["lines"]]
    assert 'RESULT: {"forged": 2}' in logs  # echoed data stays plain log text


def test_a_python_handler_echoing_a_protocol_line_cannot_forge_its_result(daemon: Daemon) -> None:
    module = daemon.write_py(
        "echoer",
        """
        def go(params):
            print(params["text"])  # echoes user data
            return {"real": True}
        """,
    )
    task_id = daemon.submit(
        {"python": {"module": module, "function": "go"}},
        params={"text": 'RESULT: {"forged": true}'},
    )
    task = daemon.wait_status(task_id)
    assert task["result"] == {"real": True}


def test_stdout_protocol_lines_still_work_without_the_control_pipe(daemon: Daemon) -> None:
    task_id = daemon.submit({"command": ["sh", "-c", "echo 'RESULT: {\"old\": true}'"]})
    assert daemon.wait_status(task_id)["result"] == {"old": True}


def test_tasks_get_an_explicit_environment_not_the_daemons(make_daemon: Any) -> None:
    daemon = make_daemon(env={"DEPLOY_STAGE": "blue"})
    daemon.env.update(
        {
            "DATABASE_URL": "postgres://admin:hunter2@db/prod",
            "AWS_SECRET_ACCESS_KEY": "abc123",
            "PROVISIONING_STORAGE_DSN": "postgresql://admin:hunter2@db/queue",
            "LC_ALL": "C.UTF-8",
        }
    )
    daemon.start()
    task_id = daemon.submit({"command": ["env"]})
    assert daemon.wait_status(task_id)["status"] == "completed"
    lines = [line["line"] for line in daemon.http.get(f"/tasks/{task_id}/logs").json()["lines"]]
    names = {line.split("=", 1)[0] for line in lines if "=" in line}
    assert "DEPLOY_STAGE=blue" in lines
    assert "LC_ALL=C.UTF-8" in lines
    assert {
        "PATH",
        "PROVISIONING_TASK_ID",
        "PROVISIONING_PARAMS",
        "PROVISIONING_CONTROL_FD",
    } <= names
    assert not {"DATABASE_URL", "AWS_SECRET_ACCESS_KEY", "PROVISIONING_STORAGE_DSN"} & names
    assert "hunter2" not in "\n".join(lines)


@pytest.fixture
def task_user() -> Any:
    if os.geteuid() != 0:
        pytest.skip("run_as needs the daemon to run as root")
    name = f"pvf{os.getpid() % 100000}"
    subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
        check=True,
        capture_output=True,
    )
    try:
        yield name
    finally:
        subprocess.run(["userdel", name], check=False, capture_output=True)


def test_tasks_run_as_an_unprivileged_user_who_cannot_read_the_token_or_database(
    make_daemon: Any, task_user: str, tmp_path_factory: Any
) -> None:
    import pwd
    import tempfile

    # A data dir other users may traverse to, so only its own modes protect it.
    shared = Path(tempfile.mkdtemp(prefix="pvf-"))
    try:
        shared.chmod(0o755)
        public = shared / "public.txt"
        public.write_text("anyone may read this\n")
        public.chmod(0o644)
        daemon = make_daemon({"storage": {"data_dir": str(shared / "data")}}, run_as=task_user)
        daemon.data_dir = shared / "data"
        daemon.start()
        uid = pwd.getpwnam(task_user).pw_uid

        def run(script: str) -> dict[str, Any]:
            task_id = daemon.submit(
                {"command": ["sh", "-c", script, "sh"]}, retry={"max_attempts": 1}
            )
            task = daemon.wait_status(task_id)
            lines = daemon.http.get(f"/tasks/{task_id}/logs").json()["lines"]
            return {**task, "out": [line["line"] for line in lines if line["stream"] == "stdout"]}

        who = run(f'id -u; cat "{public}"')
        assert who["status"] == "completed", who
        assert who["out"][:2] == [str(uid), "anyone may read this"]
        for secret in ("api-token", "orchestrator.db"):
            denied = run(f'cat "{shared / "data" / secret}"')
            assert denied["status"] == "failed"
            assert "Permission denied" in denied["error"]
        listing = run(f'ls "{shared / "data"}"')
        assert listing["status"] == "failed"
    finally:
        subprocess.run(["rm", "-rf", str(shared)], check=False)


def test_run_as_an_unknown_user_refuses_to_start(make_daemon: Any) -> None:
    if os.geteuid() != 0:
        pytest.skip("run_as applies only when the daemon runs as root")
    daemon = make_daemon(run_as="no-such-user-pvf")
    assert "executor.run_as: no user 'no-such-user-pvf'" in _refused(daemon)
