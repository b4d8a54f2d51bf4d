"""moto's server mode on loopback, in a subprocess of its own, for the AWS provider tests.

A subprocess (``python -m moto.server``) rather than moto's in-process threaded server:
moto reads its settings (AMI and instance type validation, IAM authentication) from
the environment once, at import, so each server gets exactly the settings it is started
with, and nothing of moto is imported into the test process.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import wait_for

# Make moto answer like EC2 does for an unknown AMI or instance type (off by default).
VALIDATING = {
    "MOTO_ENABLE_AMI_VALIDATION": "true",
    "MOTO_EC2_ENABLE_INSTANCE_TYPE_VALIDATION": "true",
}
# IAM authentication from the first request on: unknown access keys get AuthFailure.
AUTHENTICATING = {"INITIAL_NO_AUTH_ACTION_COUNT": "0"}


@dataclass(frozen=True)
class MotoServer:
    url: str
    log: Path


def free_port() -> int:
    """A loopback port nobody listens on (now)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/moto-api/", timeout=1) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


class _Exited(Exception):
    """The server process ended before answering (its port was taken, most likely)."""


def _start(
    log_dir: Path, env: Mapping[str, str], timeout: float
) -> tuple[subprocess.Popen[bytes], MotoServer]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = log_dir / f"moto-{port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )

    def up() -> bool:
        if process.poll() is not None:
            raise _Exited(
                f"moto server on {url} exited with {process.returncode}: "
                f"{log.read_text(errors='replace')[-2000:]}"
            )
        return _answers(url)

    try:
        wait_for(up, timeout=timeout, interval=0.05, message=f"moto server on {url}")
    except BaseException:
        _stop(process)
        raise
    return process, MotoServer(url=url, log=log)


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


@contextmanager
def moto_server(
    log_dir: Path, env: Mapping[str, str] | None = None, timeout: float = 20.0
) -> Iterator[MotoServer]:
    """Start moto's server on 127.0.0.1 and a free port; stop it on exit."""
    child_env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AWS_", "MOTO_")) and key != "INITIAL_NO_AUTH_ACTION_COUNT"
    }
    child_env.update(env or {})
    for attempt in range(3):
        try:
            process, server = _start(log_dir, child_env, timeout)
            break
        except _Exited:
            if attempt == 2:
                raise
    try:
        yield server
    finally:
        _stop(process)
