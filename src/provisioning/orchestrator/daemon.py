"""``provisioning-orchestrator``: run the daemon in the foreground or detached.

One orchestrator per data dir: the pid file is held under an exclusive lock for
the life of the process, so a second one started on the same data fails
clearly instead of corrupting the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
import uvicorn

from .. import sdnotify
from ..config import ConfigError, Settings, load_config
from ..execution.sandbox import SandboxError
from ..pidfile import PidFile, PidFileBusy, read_pid
from .api import create_app
from .httpguard import guarded_protocol, quiet_accept_errors, raise_file_limit
from .privacy import PRIVATE_UMASK, secure_data_dir
from .service import OrchestratorService
from .store import StoreError, open_store
from .store.faults import StoreUnusable

PID_FILE = "orchestrator.pid"
LOG_FILE = "orchestrator.log"

log = logging.getLogger("provisioning.orchestrator")


class DaemonError(Exception):
    """The daemon cannot start; the message says why and what to do."""

    exit_code = 1


class DataError(DaemonError):
    """Its data cannot be used (not a database, damaged, not writable): exit 2, as
    for a bad configuration: retrying will not help, the operator must act."""

    exit_code = 2


def _data_dir_error(data_dir: Path, exc: OSError) -> DataError:
    where = exc.filename or data_dir
    return DataError(
        f"{where}: {exc.strerror}: the orchestrator must be able to write its data dir "
        f"{data_dir} (check its owner and permissions, and that its filesystem is not "
        "read-only or full)"
    )


def _existing_token(path: Path) -> str:
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        os.chmod(path, 0o600)
        log.warning("token file %s had mode %o; set to 600", path, mode)
    token = path.read_text(encoding="utf-8").strip()
    if not token:
        raise DaemonError(f"token file {path} is empty; delete it to generate a new one")
    return token


def ensure_token(path: Path) -> str:
    """Read the API token, creating it (mode 0600) at first start."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _existing_token(path)
    token = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(token + "\n")
    return token


class _Server(uvicorn.Server):
    """uvicorn re-raises a caught SIGTERM after shutting down; after a clean
    shutdown we would rather exit 0, as daemons under a supervisor are expected to."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in _STOP_SIGNALS}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            sdnotify.notify("READY=1", f"MAINPID={os.getpid()}", "STATUS=accepting requests")

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        sdnotify.notify("STOPPING=1", "STATUS=finishing running tasks")
        await super().shutdown(sockets)


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto must say TCP: asyncio sets TCP_NODELAY on accepted connections only then,
    # and without it every reply waits ~40 ms for the client's delayed ACK (Nagle).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise DaemonError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(2048)
    sock.set_inheritable(False)
    return sock


async def _serve(server: uvicorn.Server, sock: socket.socket) -> None:
    quiet_accept_errors(asyncio.get_running_loop())
    if sys.version_info < (3, 12) and hasattr(asyncio, "PidfdChildWatcher"):
        # 3.11's default watcher starts a thread per child; pidfd costs nothing extra
        # (and is the default from 3.12 on).
        watcher = asyncio.PidfdChildWatcher()
        watcher.attach_loop(asyncio.get_running_loop())
        asyncio.set_child_watcher(watcher)
    await server.serve(sockets=[sock])


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def tls_files(settings: Settings, insecure_plaintext: bool) -> tuple[str, str] | None:
    """The certificate and key to serve, or ``None`` for plain HTTP; refuses plain
    HTTP on anything but loopback unless the operator insists."""
    server = settings.server
    if bool(server.tls_cert) != bool(server.tls_key):
        raise DaemonError("server.tls_cert and server.tls_key go together: set both or neither")
    files = None
    if server.tls_cert:
        cert, key = (str(Path(p).expanduser()) for p in (server.tls_cert, server.tls_key))
        for name, path in (("server.tls_cert", cert), ("server.tls_key", key)):
            if not os.access(path, os.R_OK):
                raise DaemonError(f"{name}: cannot read {path}")
        files = (cert, key)
    if is_loopback(server.host):
        return files
    if files is None and not insecure_plaintext:
        raise DaemonError(
            f"server.host {server.host} is not loopback: the API (and its token) would "
            "cross the network in plain text; set server.tls_cert and server.tls_key, "
            "or pass --insecure-plaintext"
        )
    log.warning(
        "listening on %s, reachable from other machines, %s",
        server.host,
        "over TLS" if files else "IN PLAIN TEXT (--insecure-plaintext): use TLS",
    )
    return files


def serve(settings: Settings, *, insecure_plaintext: bool = False) -> None:
    """Run the orchestrator in this process until SIGTERM/SIGINT."""
    data_dir = settings.data_dir
    os.umask(PRIVATE_UMASK)
    tls = tls_files(settings, insecure_plaintext)
    raise_file_limit()
    pid_file = PidFile(data_dir / PID_FILE)
    try:
        secure_data_dir(data_dir)
        pid_file.acquire()
    except PidFileBusy as exc:
        raise DaemonError(
            f"another orchestrator (pid {exc.pid}) is running on {data_dir}; "
            "stop it first (provisioning orchestrator stop)"
        ) from None
    except OSError as exc:
        raise _data_dir_error(data_dir, exc) from None
    try:
        try:
            token = ensure_token(settings.token_path)
        except OSError as exc:
            raise _data_dir_error(data_dir, exc) from None
        sock = _bind(settings.server.host, settings.server.port)
        try:
            store = open_store(settings)
        except StoreUnusable as exc:
            raise DataError(str(exc)) from None
        except StoreError as exc:
            raise DaemonError(str(exc)) from None
        except OSError as exc:
            raise _data_dir_error(data_dir, exc) from None
        try:
            service = OrchestratorService(settings, store, token)
        except SandboxError as exc:
            store.close()
            raise DaemonError(str(exc)) from None
        app = create_app(service, token)
        limits = settings.server
        config = uvicorn.Config(
            app,
            log_level="warning",
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=3,
            ws="auto",
            http=guarded_protocol(
                limits.max_connections,
                limits.header_timeout_seconds,
                limits.body_timeout_seconds,
            ),
            ssl_certfile=tls[0] if tls else None,
            ssl_keyfile=tls[1] if tls else None,
        )
        server = _Server(config)
        log.info(
            "orchestrator %s listening on %s://%s:%d (data %s)",
            service.node_id,
            "https" if tls else "http",
            settings.server.host,
            settings.server.port,
            data_dir,
        )
        asyncio.run(_serve(server, sock))
        if not server.started:
            raise DaemonError("the orchestrator failed to start (see the log above)")
        log.info("orchestrator %s stopped cleanly", service.node_id)
    finally:
        pid_file.release()


def detach(argv: list[str], settings: Settings, wait_seconds: float) -> int:
    """Start the daemon in the background; return its pid once ``/health`` answers."""
    data_dir = settings.data_dir
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    running = read_pid(data_dir)
    if running is not None:
        raise DaemonError(f"an orchestrator (pid {running}) is already running on {data_dir}")
    log_path = data_dir / LOG_FILE
    with open(os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600), "ab") as log_file:
        child = subprocess.Popen(
            [sys.executable, "-m", "provisioning.orchestrator.daemon", *argv],
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
    scheme = "https" if settings.server.tls_cert else "http"
    url = f"{scheme}://{settings.server.host}:{settings.server.port}/health"
    deadline = time.monotonic() + wait_seconds
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise DaemonError(
                f"the orchestrator exited with code {child.returncode}:\n{_tail(log_path)}"
            )
        with contextlib.suppress(httpx.HTTPError):
            # A readiness probe of our own child (no token sent): the certificate may be
            # self-signed, and the pid check below says it is the right process.
            probe = httpx.get(url, timeout=1, verify=False)
            if probe.status_code == 200 and read_pid(data_dir) == child.pid:
                return child.pid
        time.sleep(0.05)
    child.terminate()
    raise DaemonError(f"the orchestrator did not answer on {url} within {wait_seconds:g} s")


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@app.command()
def run(
    daemon: Annotated[bool, typer.Option("--daemon", help="Detach; return once healthy.")] = False,
    host: Annotated[str | None, typer.Option(help="Address to bind [server.host].")] = None,
    port: Annotated[int | None, typer.Option(help="Port [server.port].")] = None,
    data_dir: Annotated[str | None, typer.Option(help="Data directory [storage.data_dir].")] = None,
    storage_type: Annotated[
        str | None,
        typer.Option(
            help="sqlite (alias: filesystem), postgres, surrealdb, surrealdb-embedded, "
            "surrealdb-server [storage.backend]."
        ),
    ] = None,
    surrealdb_url: Annotated[
        str | None, typer.Option(help="ws:// URL of a SurrealDB server [storage.surrealdb_url].")
    ] = None,
    surrealdb_username: Annotated[
        str | None, typer.Option(help="[storage.surrealdb_username]")
    ] = None,
    surrealdb_password: Annotated[
        str | None,
        typer.Option(
            help="[storage.surrealdb_password]; prefer PROVISIONING_STORAGE_SURREALDB_PASSWORD "
            "or the config file (0600): a flag shows in the process list."
        ),
    ] = None,
    config: Annotated[Path | None, typer.Option(help="An extra configuration file.")] = None,
    max_concurrent_tasks: Annotated[
        int | None, typer.Option(help="[executor.max_concurrent_tasks]")
    ] = None,
    insecure_plaintext: Annotated[
        bool,
        typer.Option(
            "--insecure-plaintext", help="Allow plain HTTP on a non-loopback --host (no TLS)."
        ),
    ] = False,
) -> None:
    """provisioning-orchestrator: the durable task and workflow orchestrator daemon."""
    flags: dict[str, Any] = {
        "server.host": host,
        "server.port": port,
        "storage.data_dir": data_dir,
        "storage.backend": storage_type,
        "storage.surrealdb_url": surrealdb_url,
        "storage.surrealdb_username": surrealdb_username,
        "storage.surrealdb_password": surrealdb_password,
        "executor.max_concurrent_tasks": max_concurrent_tasks,
    }
    try:
        settings = load_config(flags=flags, extra_file=config).settings
        if daemon:
            argv = [a for a in sys.argv[1:] if a != "--daemon"]
            pid = detach(argv, settings, settings.orchestrator.timeout_seconds)
            typer.echo(
                f"orchestrator started (pid {pid}) on "
                f"http://{settings.server.host}:{settings.server.port}; "
                f"log: {settings.data_dir / LOG_FILE}"
            )
            return
        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
        serve(settings, insecure_plaintext=insecure_plaintext)
    except (ConfigError, DaemonError) as exc:
        typer.echo(f"provisioning-orchestrator: {exc}", err=True)
        code = 2 if isinstance(exc, ConfigError) else exc.exit_code
        raise typer.Exit(code) from None


def main() -> None:
    app()


if __name__ == "__main__":
    main()
