"""``provisioning provider list|plans|zones|pricing``: the providers' catalogues, as the
original's providers expose them -- live from the provider's API where it has them
(AWS zones, UpCloud plans, zones and prices), the local provider's own otherwise."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from ..providers import ProviderContext, ProviderError, get_provider
from .common import EXIT_USAGE, fail, out, print_json, state

app = typer.Typer(no_args_is_help=True)

PROVIDERS = {
    "local": "servers on this machine",
    "aws": "Amazon EC2 (boto3; credentials and endpoint from boto3's own configuration)",
    "upcloud": "UpCloud (upcloud-api; UPCLOUD_USERNAME/UPCLOUD_PASSWORD or UPCLOUD_TOKEN)",
}
JsonFlag = Annotated[bool, typer.Option("--json", help="Machine-readable output only.")]
ProviderName = Annotated[str, typer.Argument(help="local, aws or upcloud.")]


def _provider(ctx: typer.Context, name: str) -> Any:
    if name not in PROVIDERS:
        fail(f"unknown provider {name!r} (known: {', '.join(PROVIDERS)})", EXIT_USAGE)
    loaded = state(ctx).loaded
    folder = loaded.workspace_dir or Path.cwd()
    context = ProviderContext(
        workspace=loaded.settings.workspace.name or folder.name,
        workspace_dir=folder,
        infra=loaded.settings.workspace.default_infra,
        settings=dict(getattr(loaded.settings.providers, name, {})),
    )
    return get_provider(name, context)


def _show(rows: list[dict[str, Any]], json_out: bool, what: str, name: str) -> None:
    if json_out:
        print_json(rows)
        return
    if not rows:
        out.print(f"{name}: no {what} to list")
        return
    columns = list(dict.fromkeys(key for row in rows for key in row))
    table = Table(*columns)
    for row in rows:
        table.add_row(*(_cell(row.get(column)) for column in columns))
    out.print(table)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return (
            ", ".join(f"{k}={v}" for k, v in value.items())
            if isinstance(value, dict)
            else ", ".join(map(str, value))
        )
    return str(value)


def _catalogue(ctx: typer.Context, name: str, what: str, json_out: bool) -> None:
    provider = _provider(ctx, name)
    try:
        rows = getattr(provider, what)()
    except ProviderError as exc:
        fail(f"provider {name}: {exc}")
    _show(rows, json_out, what, name)


@app.command("list")
def list_(json_out: JsonFlag = False) -> None:
    """The providers this platform has."""
    rows = [{"provider": name, "description": text} for name, text in PROVIDERS.items()]
    _show(rows, json_out, "providers", "provider")


@app.command()
def plans(ctx: typer.Context, name: ProviderName, json_out: JsonFlag = False) -> None:
    """The plans (server sizes) of a provider."""
    _catalogue(ctx, name, "plans", json_out)


@app.command()
def zones(ctx: typer.Context, name: ProviderName, json_out: JsonFlag = False) -> None:
    """The zones of a provider."""
    _catalogue(ctx, name, "zones", json_out)


@app.command()
def pricing(ctx: typer.Context, name: ProviderName, json_out: JsonFlag = False) -> None:
    """The prices of a provider's plans (where its API gives them)."""
    _catalogue(ctx, name, "pricing", json_out)
