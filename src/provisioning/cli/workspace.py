"""``provisioning workspace init``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from ..infra.models import NAME_RE
from ..ssh.endpoint import workspace_key
from ..ssh.keys import ensure_key_pair
from .common import EXIT_USAGE, fail, out

app = typer.Typer(help="Create and inspect workspaces.", no_args_is_help=True)

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
    for label, value in (("workspace name", name), ("--infra", infra)):
        if not NAME_RE.match(value):
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
    out.print(f"workspace {name} created in {root}")
    out.print(f"  ssh key: {key_file.resolve() if key_file else key} (0600)")
    out.print(f"  infra {infra}: {root / 'infra' / infra / 'infra.ncl'}")
    out.print(f"next: cd {root} && provisioning server create --check")
