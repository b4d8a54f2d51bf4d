"""``provisioning workspace init|list|show``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from .common import EXIT_USAGE, fail, output_format, say, state
from .options import JsonFlag, OutputOption
from .output import Column, Table, data

app = typer.Typer(
    help="""A workspace is a folder (config/, infra/<name>/infra.ncl, extensions/,
runtime/) that commands run inside of, or that PROVISIONING_WORKSPACE names.

\b
Examples:
  provisioning workspace init acme --infra wuji
  provisioning workspace list                  # workspaces here and below
  provisioning workspace show -o json          # the current one: infras, servers""",
    no_args_is_help=True,
)
MARKER = Path("config") / "provisioning.toml"

INFRA_TEMPLATE = """\
# Infra "{infra}": servers, taskservs per server, clusters (checked by the platform's
# schemas/infra.ncl; hostnames must be RFC 1123 labels).
{{
  servers = [
    # provider "local": lab hosts on this machine (namespaces running a real sshd),
    # reached over SSH like a cloud server. Per server, `ssh = {{ user = "...", port = 22,
    # key = "...", jump = "...", use_sudo = true, address = "private" }}` overrides [ssh].
    {{ hostname = "web-1", provider = "local", plan = "small", taskservs = ["webserver"] }},
    {{ hostname = "web-2", provider = "local", plan = "small", taskservs = ["webserver"] }},
    {{ hostname = "node-1", provider = "local", plan = "medium",
       labels = {{ role = "node" }}, taskservs = ["kubernetes"] }},
  ],
  # Infra-level overrides of taskserv definitions (version, depends_on, settings).
  taskservs = {{
    webserver = {{ settings = {{ title = "Hello from {name}/{infra}" }} }},
  }},
  clusters = [
    # etcd on all three: one 3-member cluster.
    {{ name = "web", servers = ["web-1", "web-2", "node-1"], taskservs = ["containerd", "etcd"] }},
  ],
}}
"""

CONFIG_TEMPLATE = """\
# Workspace configuration: overrides the user and system files for commands run
# inside this workspace.
[workspace]
name = "{name}"
default_infra = "{infra}"

# Provider settings (credentials come from the providers' own environment variables):
# How servers are reached (defaults: the provider's login user, this workspace's key
# pair in runtime/keys/, made by `workspace init`):
# [ssh]
# user = "admin"
# key = "~/.ssh/id_ed25519"
# jump = "bastion.example.com"
# use_sudo = true
# address = "private"

# [providers]
# aws = {{ region = "eu-west-1", image = "ami-..." }}
# upcloud = {{ default_zone = "de-fra1" }}
"""


@app.command()
def init(
    name: Annotated[str, typer.Argument(help="Workspace name (an RFC 1123 label).")],
    path: Annotated[Path | None, typer.Option(help="Where to create it (default ./NAME).")] = None,
    infra: Annotated[str, typer.Option(help="Name of the first infra.")] = "default",
    key_file: Annotated[
        Path | None,
        typer.Option("--ssh-key", help="Use this private key instead of making a key pair."),
    ] = None,
) -> None:
    """Create a workspace: config/, infra/<infra>/, extensions/, runtime/."""
    from ..infra.models import NAME_RE
    from ..ssh.endpoint import workspace_key
    from ..ssh.keys import ensure_key_pair

    for label, value in (("workspace name", name), ("--infra", infra)):
        if not NAME_RE.fullmatch(value):
            fail(f"{label} {value!r} is not an RFC 1123 label (a-z, 0-9, '-')", EXIT_USAGE)
    root = (path or Path(name)).resolve()
    if (root / "config" / "provisioning.toml").exists():
        fail(f"{root} is already a workspace", EXIT_USAGE)
    for folder in (
        "config",
        f"infra/{infra}",
        "extensions/taskservs",
        "extensions/providers",
        "extensions/nulib",
        "runtime/state",
        "runtime/servers",
        "runtime/logs",
        "runtime/generated",
        "runtime/packages",
    ):
        (root / folder).mkdir(parents=True, exist_ok=True)
    key = workspace_key(root)
    if key_file is None:
        ensure_key_pair(key, f"provisioning@{name}")
    config = CONFIG_TEMPLATE.format(name=name, infra=infra)
    if key_file is not None:
        if not key_file.is_file():
            fail(f"--ssh-key {key_file}: no such file", EXIT_USAGE)
        config += f"\n[ssh]\nkey = {json.dumps(str(key_file.resolve()))}\n"
    (root / "config" / "provisioning.toml").write_text(config)
    (root / "infra" / infra / "infra.ncl").write_text(INFRA_TEMPLATE.format(name=name, infra=infra))
    say(f"workspace {name} created in {root}")
    say(f"  ssh key: {key_file.resolve() if key_file else key} (0600)")
    say(f"  infra {infra}: {root / 'infra' / infra / 'infra.ncl'}")
    say(f"next: cd {root} && provisioning server create --check")


def describe(root: Path) -> dict[str, Any]:
    """A workspace's name, default infra and infras (with their recorded servers)."""
    import tomllib

    from ..infra.state import read_state

    try:
        config = tomllib.loads((root / MARKER).read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        fail(f"{root / MARKER}: cannot read: {exc}", EXIT_USAGE)
    section = config.get("workspace", {})
    infras = sorted(p.parent.name for p in (root / "infra").glob("*/infra.ncl"))
    return {
        "name": section.get("name", root.name),
        "path": str(root),
        "default_infra": section.get("default_infra"),
        "infras": [
            {"name": name, "servers_recorded": len(read_state(root, name)["servers"])}
            for name in infras
        ],
    }


def workspaces_table(rows: list[dict[str, Any]]) -> Table:
    table = Table(
        [
            Column("name", wrap=False),
            Column("default infra", drop=1, wrap=False),
            Column("infras"),
            Column("path"),
        ]
    )
    for row in rows:
        table.add_row(
            row["name"] + (" *" if row.get("current") else ""),
            row["default_infra"] or "",
            ", ".join(i["name"] for i in row["infras"]),
            row["path"],
        )
    return table


@app.command("list")
def list_(
    ctx: typer.Context,
    under: Annotated[
        Path, typer.Argument(metavar="DIR", help="Where to look (default: here).")
    ] = Path("."),
    json_out: JsonFlag = False,
    output: OutputOption = None,
) -> None:
    """Workspaces in DIR and two levels below it, and the current one (marked *)."""
    fmt = output_format(output, json_out)
    current = state(ctx).loaded.workspace_dir
    found = {p.parent.parent.resolve() for p in under.glob(str(MARKER))}
    for pattern in ("*", "*/*"):
        found |= {p.parent.parent.resolve() for p in under.glob(f"{pattern}/{MARKER}")}
    if current is not None:
        found.add(current.resolve())
    rows = [
        {**describe(root), "current": current is not None and root == current.resolve()}
        for root in sorted(found)
    ]
    if fmt.machine:
        data({"workspaces": rows}, fmt)
        return
    workspaces_table(rows).print(fmt)


@app.command()
def show(ctx: typer.Context, json_out: JsonFlag = False, output: OutputOption = None) -> None:
    """The current workspace: where it is, its default infra, its infras."""
    fmt = output_format(output, json_out)
    current = state(ctx).loaded.workspace_dir
    if current is None:
        fail(
            "not inside a workspace: run `provisioning workspace init NAME`, "
            "or set PROVISIONING_WORKSPACE",
            EXIT_USAGE,
        )
    report = describe(current)
    if fmt.machine:
        data(report, fmt)
        return
    say((report["name"], "bold"), f"  {report['path']}")
    say(f"default infra: {report['default_infra'] or '-'}")
    for infra in report["infras"]:
        say(f"  infra {infra['name']}: {infra['servers_recorded']} server(s) recorded")
