"""The real ``provisioning`` console script in an isolated machine inside a tmp dir.

HOME, XDG_CONFIG_HOME, the system configuration file and the working directory all
point into ``root``; ``PROVISIONING_CONFIG`` names a file that sets a free
``server.port`` (from which the CLI derives the orchestrator endpoint) and a private
``storage.data_dir``. Every daemon seen on that data dir is stopped by :meth:`Cli.cleanup`.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from provisioning.pidfile import read_pid
from tests.acceptance.conftest import BIN, free_port, pid_alive
from tests.conftest import wait_for
from tests.lab import package_cache

PROVISIONING = BIN / "provisioning"

# Variables of the outer environment that would change what the CLI does or prints.
_SCRUB = ("FORCE_COLOR", "PY_COLORS", "CLICOLOR_FORCE", "TTY_COMPATIBLE", "TTY_INTERACTIVE")


@dataclass(frozen=True)
class Result:
    """One finished run of the console script."""

    args: tuple[str, ...]
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        """stdout parsed as one JSON document (fails if anything else is printed)."""
        try:
            return json.loads(self.stdout)
        except json.JSONDecodeError as exc:
            raise AssertionError(f"stdout is not only JSON ({exc}):\n{self}") from None

    def lines(self, needle: str, stream: str = "stderr") -> list[str]:
        text = self.stderr if stream == "stderr" else self.stdout
        return [line for line in text.splitlines() if needle in line]

    def __str__(self) -> str:
        return (
            f"$ provisioning {' '.join(self.args)}\n[exit {self.code}]\n"
            f"--- stdout\n{self.stdout}--- stderr\n{self.stderr}"
        )


class Cli:
    """A fake machine for ``provisioning`` runs, and the daemons they leave behind."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.home = root / "home"
        self.config_home = self.home / ".config"
        self.config_home.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.data_dir = root / "data"
        self.system_config = root / "etc" / "provisioning.toml"
        self.user_config = self.config_home / "provisioning" / "config.toml"
        self.config = root / "provisioning.toml"
        self.write_config()
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("PROVISIONING_") and k not in _SCRUB
        }
        env.update(
            {
                "HOME": str(self.home),
                "XDG_CONFIG_HOME": str(self.config_home),
                "PROVISIONING_SYSTEM_CONFIG": str(self.system_config),
                "PROVISIONING_CONFIG": str(self.config),
                "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
                "COLUMNS": "200",
                "NO_COLOR": "1",
                # Debian packages of the taskservs: fetched once for the whole run.
                "PROVISIONING_PACKAGES_CACHE_DIR": package_cache(),
            }
        )
        self.env = env
        self.pids: set[int] = set()

    def write_config(self, extra: str = "") -> Path:
        """The ``PROVISIONING_CONFIG`` file: port, data dir, then ``extra`` TOML."""
        self.config.write_text(
            f'[server]\nport = {self.port}\n\n[storage]\ndata_dir = "{self.data_dir}"\n' + extra
        )
        return self.config

    def run(
        self,
        *args: str,
        env: Mapping[str, str | None] | None = None,
        cwd: Path | None = None,
        timeout: float = 60,
    ) -> Result:
        """Run ``provisioning ARGS``; ``env`` adds variables (``None`` removes one)."""
        environ = dict(self.env)
        for key, value in (env or {}).items():
            if value is None:
                environ.pop(key, None)
            else:
                environ[key] = value
        completed = subprocess.run(
            [str(PROVISIONING), *args],
            env=environ,
            cwd=cwd or self.root,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        self.remember_daemon()
        return Result(tuple(args), completed.returncode, completed.stdout, completed.stderr)

    # -- the daemon of this data dir --------------------------------------------------------

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "orchestrator.pid"

    def daemon_pid(self) -> int | None:
        """The pid of the live orchestrator holding this data dir's pid file."""
        return read_pid(self.data_dir) if self.data_dir.exists() else None

    def remember_daemon(self) -> None:
        pid = self.daemon_pid()
        if pid is not None:
            self.pids.add(pid)

    def healthy(self) -> bool:
        try:
            return httpx.get(self.url + "/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def listening(self) -> bool:
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", self.port)) == 0

    def cleanup(self) -> None:
        """SIGTERM every daemon this machine started, and wait until each is gone."""
        self.remember_daemon()
        for pid in self.pids:
            if not pid_alive(pid):
                continue
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            try:
                wait_for(lambda p=pid: not pid_alive(p), timeout=20, message=f"pid {pid} to exit")
            except AssertionError:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                wait_for(lambda p=pid: not pid_alive(p), timeout=10, message=f"pid {pid} killed")
