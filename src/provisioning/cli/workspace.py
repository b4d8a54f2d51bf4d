"""``provisioning workspace init``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..infra.models import NAME_RE
from .common import EXIT_USAGE, fail, out

app = typer.Typer(help="Create and inspect workspaces.", no_args_is_help=True)

INFRA_TEMPLATE = """\
# Infra "{infra}": servers, taskservs per server, clusters (checked by the platform's
# schemas/infra.ncl; hostnames must be RFC 1123 labels).
{{
  servers = [
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
    {{ name = "web", servers = ["web-1", "web-2", "node-1"], taskservs = ["containerd"] }},
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
# [providers]
# aws = {{ region = "eu-west-1", image = "ami-..." }}
# upcloud = {{ default_zone = "de-fra1" }}
"""


@app.command()
def init(
    name: Annotated[str, typer.Argument(help="Workspace name (an RFC 1123 label).")],
    path: Annotated[Path | None, typer.Option(help="Where to create it (default ./NAME).")] = None,
    infra: Annotated[str, typer.Option(help="Name of the first infra.")] = "default",
) -> None:
    """Create a workspace: config/, infra/<infra>/, extensions/, runtime/."""
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
    ):
        (root / folder).mkdir(parents=True, exist_ok=True)
    (root / "config" / "provisioning.toml").write_text(
        CONFIG_TEMPLATE.format(name=name, infra=infra)
    )
    (root / "infra" / infra / "infra.ncl").write_text(INFRA_TEMPLATE.format(name=name, infra=infra))
    out.print(f"workspace {name} created in {root}")
    out.print(f"  infra {infra}: {root / 'infra' / infra / 'infra.ncl'}")
    out.print(f"next: cd {root} && provisioning server create --check")
