"""A throwaway PostgreSQL server for the tests that need one.

Debian's ``postgresql`` package provides the binaries (``/usr/lib/postgresql/N/bin``).
The server is created once per test session, on first use: ``initdb`` into a temporary
folder (as the ``postgres`` OS user when the tests run as root, since PostgreSQL refuses
to run as root), configured to listen on 127.0.0.1 on a free port with its socket in that
folder and ``trust`` authentication, started with ``pg_ctl``, and stopped (``pg_ctl stop
-m fast``) and removed when the session ends. Each test gets databases of its own
(:meth:`PostgresServer.new_database`; emptied databases of finished tests are reused, as
creating one is slow), so tests stay independent.

Without the binaries the tests that need them are skipped with the reason — locally;
under CI (``CI=true``), which installs the package, that is an error instead.
"""

from __future__ import annotations

import itertools
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

INSTALL_HINT = "apt-get install -y postgresql"


def find_bindir() -> Path | None:
    """The folder of ``initdb``/``pg_ctl``: Debian's newest, else one on PATH."""
    versions = []
    for candidate in Path("/usr/lib/postgresql").glob("*/bin"):
        if (candidate / "initdb").is_file() and (candidate / "pg_ctl").is_file():
            match = re.fullmatch(r"\d+", candidate.parent.name)
            versions.append((int(match.group()) if match else 0, candidate))
    if versions:
        return max(versions)[1]
    initdb = shutil.which("initdb")
    if initdb and shutil.which("pg_ctl"):
        return Path(initdb).parent
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class PostgresServer:
    """One ``postgres`` process on 127.0.0.1, with its data in a temporary folder."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.host = "127.0.0.1"
        self.port = 0
        self.user = "postgres"
        self._as_postgres = os.geteuid() == 0
        self.root = Path(tempfile.mkdtemp(prefix="provisioning-pg-"))
        self.data = self.root / "data"
        self.logfile = self.root / "server.log"
        self._names = itertools.count(1)
        self._lock = threading.Lock()
        self._free: list[str] = []  # databases of finished tests
        self._leased: list[str] = []  # databases of the running test
        self._started = False

    def _run(self, *argv: str | Path, timeout: float = 120) -> None:
        """Run a PostgreSQL tool (as the ``postgres`` user when we are root); argv only."""
        command = [str(arg) for arg in argv]
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        result = subprocess.run(
            command,
            cwd=self.root,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env={**os.environ, "LC_ALL": "C", "LANG": "C"},
        )
        if result.returncode != 0:
            log = self.logfile.read_text(errors="replace") if self.logfile.exists() else ""
            raise RuntimeError(
                f"{' '.join(command)} exited {result.returncode}\n{result.stdout}\n"
                f"{result.stderr}\n--- server log ---\n{log[-4000:]}"
            )

    def start(self) -> None:
        if self._as_postgres:
            owner = pwd.getpwnam("postgres")
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
        self._run(
            self.bindir / "initdb",
            "-D",
            self.data,
            "-U",
            self.user,
            "--auth-local=trust",
            "--auth-host=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
            "--no-instructions",
        )
        # Settings in the configuration file rather than a pg_ctl -o string (which
        # pg_ctl hands to a shell). Durability is not under test: no fsync.
        for attempt in range(5):
            self.port = _free_port()
            settings = {
                "listen_addresses": "'127.0.0.1'",
                "port": str(self.port),
                "unix_socket_directories": f"'{self.root}'",
                "max_connections": "200",
                "fsync": "off",
                "synchronous_commit": "off",
                "full_page_writes": "off",
                "shared_buffers": "64MB",
                "log_min_messages": "warning",
                "deadlock_timeout": "200ms",
            }
            with (self.data / "postgresql.auto.conf").open("a", encoding="utf-8") as conf:
                conf.writelines(f"{key} = {value}\n" for key, value in settings.items())
            try:
                self._run(
                    self.bindir / "pg_ctl",
                    "start",
                    "-D",
                    self.data,
                    "-l",
                    self.logfile,
                    "-w",
                    "-t",
                    "60",
                )
            except RuntimeError:
                if attempt == 4:
                    raise
                continue  # the port was taken in between: another one
            self._started = True
            return

    def stop(self) -> None:
        try:
            if self._started:
                self._run(self.bindir / "pg_ctl", "stop", "-D", self.data, "-m", "fast", "-w")
                self._started = False
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def halt(self) -> None:
        """Stop the server as an outage does (``pg_ctl stop -m fast``), keeping its data."""
        self._run(self.bindir / "pg_ctl", "stop", "-D", self.data, "-m", "fast", "-w")

    def resume(self) -> None:
        """Start it again after :meth:`halt`, on the same port."""
        self._run(
            self.bindir / "pg_ctl", "start", "-D", self.data, "-l", self.logfile, "-w", "-t", "60"
        )

    def dsn(self, dbname: str = "postgres", **extra: str) -> str:
        options = "".join(f" {key}={value}" for key, value in extra.items())
        return f"host={self.host} port={self.port} user={self.user} dbname={dbname}{options}"

    def new_database(self) -> str:
        """An empty database for the running test; its DSN.

        ``CREATE DATABASE`` costs a few hundred milliseconds (it copies ``template1``),
        so the databases of finished tests are reused: emptied first (their leftover
        sessions ended, schema ``public`` dropped and created anew)."""
        import psycopg

        with self._lock:
            name = self._free.pop() if self._free else None
            fresh = name is None
            if name is None:
                name = f"test_{next(self._names)}"
            self._leased.append(name)
        if fresh:
            with psycopg.connect(self.dsn(), autocommit=True) as admin:
                admin.execute(f'CREATE DATABASE "{name}"')
        else:
            with psycopg.connect(self.dsn(name), autocommit=True) as conn:
                conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
                conn.execute("DROP SCHEMA public CASCADE")
                conn.execute("CREATE SCHEMA public")
        return self.dsn(name)

    def release(self) -> None:
        """The running test is over: its databases may be emptied and reused."""
        with self._lock:
            self._free.extend(self._leased)
            self._leased.clear()


_server: PostgresServer | None = None
_unavailable: str | None = None
_guard = threading.Lock()


def running_server() -> PostgresServer:
    """The session's server, started on first use; skips (fails under CI) when there
    is no PostgreSQL here."""
    global _server, _unavailable
    with _guard:
        if _server is None and _unavailable is None:
            _unavailable = _why_unavailable()
            if _unavailable is None:
                server = PostgresServer(find_bindir() or Path())
                try:
                    server.start()
                except BaseException:
                    server.stop()
                    raise
                _server = server
        if _server is not None:
            return _server
    reason = f"PostgreSQL tests need a server: {_unavailable}"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI installs it: {INSTALL_HINT})")
    pytest.skip(reason)


def _why_unavailable() -> str | None:
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg is not installed (pip install 'psycopg[binary]')"
    if find_bindir() is None:
        return f"initdb/pg_ctl not found (Debian: {INSTALL_HINT})"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no 'postgres' user to run the server as"
        if shutil.which("runuser") is None:
            return "running as root and runuser(1) is missing"
    return None


def stop_server() -> None:
    global _server
    with _guard:
        if _server is not None:
            _server.stop()
            _server = None


@pytest.fixture(scope="session", autouse=True)
def _stop_postgres_at_the_end() -> Iterator[None]:
    """Stops the session's server (if a test started one) when the session ends."""
    yield
    stop_server()


@pytest.fixture(autouse=True)
def _recycle_postgres_databases() -> Iterator[None]:
    """After each test (and its fixtures, which close their stores), its databases
    may be reused by the next one."""
    yield
    if _server is not None:
        _server.release()


@pytest.fixture(scope="session")
def pg_server() -> PostgresServer:
    """The throwaway server (started on first use, stopped at the end of the session)."""
    return running_server()


@pytest.fixture
def pg_dsn(pg_server: PostgresServer) -> Callable[[], str]:
    """Call it for the DSN of a new, empty database."""
    return pg_server.new_database
