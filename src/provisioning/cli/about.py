"""``provisioning version`` and ``provisioning env``."""

from __future__ import annotations

import typer

from .. import API_VERSION, __version__, compat
from ..client import ClientError, OrchestratorClient
from .common import output_format, say, state
from .output import Column, Table, data


def show_version(ctx: typer.Context, *, json_out: bool, output: str | None) -> None:
    fmt = output_format(output, json_out)
    report: dict[str, object] = {"version": __version__, "api_version": API_VERSION}
    settings = state(ctx).loaded.settings
    try:
        health = OrchestratorClient(settings.orchestrator.endpoint, None, 5).health()
        try:
            compat.check(health)
            problem = None
        except compat.Incompatible as exc:
            problem = str(exc)
        report["orchestrator"] = {
            "version": health.get("version"),
            "api_version": health.get("api_version"),
            "compatible": problem is None,
            "problem": problem,
        }
    except ClientError:
        report["orchestrator"] = None
    if fmt.machine:
        data(report, fmt)
        return
    say(f"provisioning {__version__} (API {API_VERSION})")
    orch = report["orchestrator"]
    if isinstance(orch, dict):
        head = f"orchestrator {orch['version']} (API {orch['api_version']}): "
        if orch["compatible"]:
            say(head, ("compatible", "green"))
        else:
            say(head, ("incompatible", "red"), f": {orch['problem']}")
    else:
        say(f"orchestrator: not reachable at {settings.orchestrator.endpoint}")


def env_table(rows: list[tuple[str, object, str]]) -> Table:
    table = Table(
        [Column("key", wrap=False), Column("value"), Column("source", drop=1, wrap=False)]
    )
    for key, value, source in rows:
        table.add_row(key, repr(value) if isinstance(value, str) else str(value), source)
    return table


def show_env(ctx: typer.Context, *, json_out: bool, output: str | None) -> None:
    fmt = output_format(output, json_out)
    loaded = state(ctx).loaded
    values = loaded.settings.model_dump(mode="json")
    rows = [
        (
            f"{section}.{key}",
            "(hidden)" if key.endswith("password") and value else value,
            loaded.sources.get(f"{section}.{key}", "default"),
        )
        for section, body in values.items()
        for key, value in body.items()
    ]
    if fmt.machine:
        data({key: {"value": value, "source": source} for key, value, source in rows}, fmt)
        return
    env_table(rows).print(fmt)
