"""``provisioning orchestrator start|stop|status|logs``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from typing import Annotated, Any

import typer

from .. import compat
from ..client import ClientError, Unauthorized
from ..pidfile import read_pid
from .common import (
    EXIT_FAILED,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    client_failure,
    connect,
    fail,
    notify,
    output_format,
    probe,
    say,
    state,
)
from .options import JsonFlag, OutputOption
from .output import Column, Table, data

app = typer.Typer(
    help="""The daemon binds 127.0.0.1:9090 by default and keeps its data (store, token,
log, pid file) in storage.data_dir. Commands that need it start it on demand when
orchestrator.auto_start is true.

\b
Examples:
  provisioning orchestrator start --daemon
  provisioning orchestrator status
  provisioning orchestrator logs -f
  provisioning orchestrator stop""",
    no_args_is_help=True,
)

LOG_FILE = "orchestrator.log"


def daemon_argv(ctx: typer.Context) -> list[str]:
    """The ``provisioning-orchestrator`` command for this configuration."""
    st = state(ctx)
    argv = [sys.executable, "-m", "provisioning.orchestrator.daemon"]
    if st.config_file is not None:
        argv += ["--config", str(st.config_file)]
    return argv


@app.command()
def start(
    ctx: typer.Context,
    daemon: Annotated[bool, typer.Option("--daemon", help="Detach; return once healthy.")] = False,
) -> None:
    """Start the orchestrator (in the foreground unless --daemon)."""
    argv = daemon_argv(ctx) + (["--daemon"] if daemon else [])
    _ = state(ctx).loaded  # Fail on a bad configuration here, with our own message.
    if not daemon:
        os.execv(argv[0], argv)
    completed = subprocess.run(argv, check=False)
    raise typer.Exit(completed.returncode)


@app.command("migrate-store")
def migrate_store(
    ctx: typer.Context,
    dsn: Annotated[str, typer.Option(help="The PostgreSQL connection string to copy into.")],
) -> None:
    """Copy this configuration's SQLite store into PostgreSQL (stop the orchestrator first)."""
    data_dir = state(ctx).loaded.settings.data_dir
    argv = [
        sys.executable,
        "-m",
        "provisioning.orchestrator.migrate",
        "--data-dir",
        str(data_dir),
        "--dsn",
        dsn,
    ]
    raise typer.Exit(subprocess.run(argv, check=False).returncode)


@app.command()
def stop(ctx: typer.Context) -> None:
    """Stop the orchestrator of this data dir (SIGTERM, then wait for it to finish)."""
    from ..execution.procfs import is_zombie_or_gone

    settings = state(ctx).loaded.settings
    pid = read_pid(settings.data_dir)
    if pid is None:
        say(f"no orchestrator is running on {settings.data_dir}")
        return
    os.kill(pid, signal.SIGTERM)
    wait = settings.executor.shutdown_grace_seconds + settings.executor.kill_grace_seconds + 15
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        # The lock goes with the pid file a moment before the process is gone: wait for both.
        if read_pid(settings.data_dir) != pid and is_zombie_or_gone(pid):
            say(f"orchestrator (pid {pid}) stopped")
            return
        time.sleep(0.05)
    fail(f"orchestrator (pid {pid}) did not stop within {wait:g} s", EXIT_FAILED)


def counts_table(counts: dict[str, int]) -> Table:
    table = Table([Column("tasks", wrap=False), Column("count", wrap=False)])
    for key, number in counts.items():
        table.add_row(key, str(number))
    return table


def nodes_table(nodes: list[dict[str, Any]]) -> Table:
    table = Table(
        [
            Column("node", wrap=False),
            Column("host", drop=1, wrap=False),
            Column("pid", drop=2, wrap=False),
            Column("running", wrap=False),
            Column("heartbeat", wrap=False),
        ]
    )
    for node in nodes:
        table.add_row(
            node["id"] + (" (this)" if node["this"] else ""),
            node["host"],
            str(node["pid"]),
            f"{node['running']}/{node['max_concurrent']}",
            f"{node['seconds_since_heartbeat']}s ago",
        )
    return table


@app.command()
def status(ctx: typer.Context, json_out: JsonFlag = False, output: OutputOption = None) -> None:
    """Whether the orchestrator answers, and what it holds."""
    fmt = output_format(output, json_out)
    st = state(ctx)
    settings = st.loaded.settings
    pid = read_pid(settings.data_dir)
    health = probe(settings)
    endpoint = settings.orchestrator.endpoint
    if health is None:
        if fmt.machine:
            data({"status": "down", "endpoint": endpoint, "pid": pid}, fmt)
        else:
            say("orchestrator: ", ("down", "red"), f" (nothing answers at {endpoint})")
        raise typer.Exit(EXIT_UNREACHABLE)
    try:
        report = connect(settings, health, check_version=False).status()
    except Unauthorized as exc:
        # /health needs no token: say how the daemon is, then why the rest is refused.
        if fmt.machine:
            data({**health, "endpoint": endpoint, "pid": pid, "error": str(exc)}, fmt)
        else:
            say(
                "orchestrator: ",
                (str(health.get("status", "?")), "green"),
                f" at {endpoint} (version {health.get('version')}, pid {pid})",
            )
        fail(str(exc), EXIT_USAGE)
    except ClientError as exc:
        client_failure(exc)
    try:
        compat.check(health)
        report["compatible"], report["compatibility_problem"] = True, None
    except compat.Incompatible as exc:
        report["compatible"], report["compatibility_problem"] = False, str(exc)
    report["pid"] = pid
    report["endpoint"] = endpoint
    if fmt.machine:
        data(report, fmt)
        return
    say(
        "orchestrator: ",
        (report["status"], "green"),
        f" at {report['endpoint']} (version {report['version']}, API "
        f"{report['api_version']}, pid {pid}, node {report['node_id']})",
    )
    if not report["compatible"]:
        notify(f"this CLI cannot use it: {report['compatibility_problem']}", "warning")
    storage = report["storage"]
    size = storage.get("size_bytes")
    shown = f", {size / 1_048_576:.1f} MiB" if isinstance(size, int) else ""
    say(f"storage: {storage['backend']} {storage.get('path', '')}{shown}")
    say(f"running here: {report['running_here']} of {report['max_concurrent_tasks']}")
    counts_table(report["tasks"]).print(fmt)
    if len(report.get("nodes", [])) > 1 or report["storage"].get("backend") != "sqlite":
        nodes_table(report["nodes"]).print(fmt)


@app.command()
def logs(
    ctx: typer.Context,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new lines.")
    ] = False,
    lines: Annotated[int, typer.Option("-n", help="Lines from the end.")] = 50,
    json_out: Annotated[
        bool, typer.Option("--json", help='One JSON object per line: {"line": ...}.')
    ] = False,
) -> None:
    """The daemon's own log (from ``--daemon`` runs)."""
    path = state(ctx).loaded.settings.data_dir / LOG_FILE
    if not path.exists():
        fail(f"no log at {path} (the orchestrator writes it when started with --daemon)")

    from .output import is_terminal, strip_controls

    tty = is_terminal(sys.stdout)

    def emit(line: str) -> None:
        if not json_out and tty:
            line = strip_controls(line.rstrip("\n")) + "\n"
        sys.stdout.write(json.dumps({"line": line.rstrip("\n")}) + "\n" if json_out else line)
        sys.stdout.flush()

    with path.open(errors="replace") as handle:
        for line in handle.readlines()[-lines:]:
            emit(line)
        while follow:
            line = handle.readline()
            if line:
                emit(line)
            else:
                time.sleep(0.2)  # tail -f's polling.
