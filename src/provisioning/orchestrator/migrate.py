"""``python -m provisioning.orchestrator.migrate``: copy a SQLite data dir into
PostgreSQL (``provisioning orchestrator migrate-store`` runs it).

The target must be empty; the copy is one transaction there, and is checked
row for row (counts per table) before it is reported done. Stop the
orchestrator of the source first: its pid file lock is checked.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from ..pidfile import read_pid
from .store import StoreError
from .store.sqlite import SQLiteStore

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@app.command()
def migrate(
    data_dir: Annotated[Path, typer.Option(help="The SQLite orchestrator's data dir.")],
    dsn: Annotated[str, typer.Option(help="The PostgreSQL connection string.")],
) -> None:
    """Copy every task, attempt, log line and workflow from SQLite into PostgreSQL."""
    source_file = data_dir.expanduser() / "orchestrator.db"
    if not source_file.is_file():
        typer.echo(f"migrate-store: no SQLite store at {source_file}", err=True)
        raise typer.Exit(2)
    running = read_pid(data_dir.expanduser())
    if running is not None:
        typer.echo(
            f"migrate-store: an orchestrator (pid {running}) still uses {data_dir}; stop it first",
            err=True,
        )
        raise typer.Exit(1)
    try:
        from .store.postgres import PostgresStore

        source = SQLiteStore(source_file)
        source.migrate()
        rows = source.dump()
        target = PostgresStore(dsn)
        target.migrate()
        counts = target.load(rows)
    except StoreError as exc:
        typer.echo(f"migrate-store: {exc}", err=True)
        raise typer.Exit(1) from None
    for table, count in counts.items():
        typer.echo(f"{table}: {count} row(s)")
    typer.echo(f"migrated {source_file} into {target.meta()['dsn']}")


if __name__ == "__main__":
    sys.exit(app())
