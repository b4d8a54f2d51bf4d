"""``python -m provisioning.taskservs.tool VERB``: the steps a taskserv's Nushell
install module calls. Files are rendered here; everything else happens on the
server, over SSH (POSIX sh scripts of ``remote/`` run there). Reads the task's
parameters from ``PROVISIONING_PARAMS``; prints one JSON document.

Verbs (each closes its SSH connection when done; its commands share one):
``prepare`` (render + status), ``apply`` (upload, install, check, record),
``uninstall`` (remove + forget), ``status``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import jinja2

from ..config import load_config
from ..infra import load_infra, state
from ..ssh import Completed, EndpointError, Ssh, SshError
from ..ssh.servers import connect
from .catalog import CatalogError, TaskservDef, resolve
from .packages import PackageError, fetch

REMOTE_SCRIPTS = Path(__file__).resolve().parent / "remote"
HOST_FOLDERS = ("etc", "opt", "var", "srv", "usr")
REMOTE_HOMES = "/opt/provisioning/taskservs"
REMOTE_BUNDLES = "/opt/provisioning/bundles"


class TaskservError(Exception):
    """A taskserv step cannot run; the message says why."""


class Job:
    """One taskserv on one server, from the task's parameters."""

    def __init__(self, params: dict[str, Any]) -> None:
        self.workspace_dir = Path(params["workspace_dir"])
        self.infra_name = str(params["infra"])
        item = params.get("item")
        # An item is a hostname, or (the original's server_configs) a server definition.
        named = item.get("hostname") if isinstance(item, dict) else item
        self.hostname = str(params.get("hostname") or named)
        self.peers = [str(p) for p in params.get("peers") or [self.hostname]]
        # The server's own ssh settings, when the plan carries them (no infra to read).
        overrides = params.get("ssh")
        self.ssh_override: dict[str, Any] | None = (
            dict(overrides.get(self.hostname) or {}) if isinstance(overrides, dict) else None
        )
        name = str(params["taskserv"])
        if "version" in params and isinstance(params.get("settings"), dict):
            found = resolve(name, self.workspace_dir)
            self.definition: TaskservDef = replace(
                found, version=str(params["version"]), settings=dict(params["settings"])
            )
        else:
            infra = load_infra(self.workspace_dir, self.infra_name)
            self.definition = resolve(name, self.workspace_dir, infra)
        servers = state.read_state(self.workspace_dir, self.infra_name)["servers"]
        self.server: dict[str, Any] = servers.get(self.hostname) or {}
        if not self.server.get("provider_id"):
            raise TaskservError(
                f"server {self.hostname} does not exist in infra {self.infra_name} "
                "(create it first: provisioning server create)"
            )
        self.servers = servers
        self._ssh: Ssh | None = None

    # -- where things are ----------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.definition.name

    @property
    def ssh(self) -> Ssh:
        if self._ssh is None:
            self._ssh = connect(
                self.workspace_dir, self.infra_name, self.hostname, self.ssh_override
            )
        return self._ssh

    @property
    def bundle(self) -> Path:
        return (
            self.workspace_dir
            / "runtime"
            / "generated"
            / self.infra_name
            / self.hostname
            / self.name
        )

    @property
    def home(self) -> str:
        return f"{REMOTE_HOMES}/{self.name}"

    def _host_address(self, record: dict[str, Any]) -> str:
        """The address the server's services bind to (its own interface's)."""
        extra = record.get("extra") or {}
        return str(extra.get("private_address") or extra.get("private_ip") or record["address"])

    def _values(self) -> dict[str, Any]:
        peers = []
        for hostname in sorted(set(self.peers)):
            record = self.servers.get(hostname)
            if record and record.get("address"):
                peers.append({"hostname": hostname, "address": self._host_address(record)})
        return {
            "server": self.server,
            "hostname": self.hostname,
            "address": self._host_address(self.server),
            "settings": self.definition.settings,
            "version": self.definition.version,
            "infra": self.infra_name,
            "peers": peers,
        }

    def _fill(self, text: str) -> str:
        values = self._values()
        return text.format_map({**values, "port": values["settings"].get("port", "")})

    # -- here: rendering -------------------------------------------------------------------

    def _templates(self) -> list[Path]:
        folder = self.definition.folder / "templates"
        return sorted(p for p in folder.rglob("*.j2") if p.is_file()) if folder.is_dir() else []

    def render(self) -> dict[str, Any]:
        """The bundle to upload: rendered files, packages, the settings as a shell-quoted
        env file, the remote scripts; its digest tells an install apart."""
        env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(self.definition.folder / "templates"),
            undefined=jinja2.StrictUndefined,
            autoescape=jinja2.select_autoescape(["html"]),
            keep_trailing_newline=True,
        )
        shutil.rmtree(self.bundle, ignore_errors=True)
        (self.bundle / "files").mkdir(parents=True)
        values = self._values()
        written = []
        for template in self._templates():
            relative = template.relative_to(self.definition.folder / "templates").with_suffix("")
            if relative.parts[0] not in HOST_FOLDERS:
                raise TaskservError(
                    f"{template}: a taskserv writes only under /{', /'.join(HOST_FOLDERS)}"
                )
            target = self.bundle / "files" / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(env.get_template(relative.as_posix() + ".j2").render(values))
            written.append("/" + relative.as_posix())
        debs = (
            fetch(self.definition.packages, self._cache_dir()) if self.definition.packages else []
        )
        if debs:
            (self.bundle / "packages").mkdir()
            for deb in debs:
                os.link(deb, self.bundle / "packages" / deb.name)
        for script in REMOTE_SCRIPTS.glob("*.sh"):
            shutil.copy(script, self.bundle / script.name)
        if self.definition.service_argv:
            argv = [self._fill(arg) for arg in self.definition.service_argv]
            (self.bundle / "service.argv").write_text(shlex.join(argv) + "\n")
        digest = self._digest()
        check = self.definition.check
        variables = {
            "NAME": self.name,
            "VERSION": self.definition.version,
            "DIGEST": digest,
            "CHECK_VERSION": str(check.get("version", self.definition.version)),
            "CHECK_VERSION_ARGV": shlex.join(check.get("version_argv", [])),
            "CHECK_PORT": self._fill(str(check.get("port", ""))),
            "CHECK_ARGV": shlex.join(self._fill(a) for a in check.get("argv", [])),
        }
        (self.bundle / "taskserv.env").write_text(
            "".join(f"{key}={shlex.quote(value)}\n" for key, value in variables.items())
        )
        return {
            "taskserv": self.name,
            "hostname": self.hostname,
            "version": self.definition.version,
            "files": written,
            "packages": [deb.name for deb in debs],
            "digest": digest,
            "service": bool(self.definition.service_argv),
        }

    def _cache_dir(self) -> Path:
        configured = load_config(cwd=self.workspace_dir).settings.packages.cache_dir
        if configured:
            return Path(configured).expanduser()
        return self.workspace_dir / "runtime" / "packages"

    def _digest(self) -> str:
        digest = hashlib.sha256(self.definition.version.encode())
        for path in sorted(p for p in self.bundle.rglob("*") if p.is_file()):
            digest.update(str(path.relative_to(self.bundle)).encode() + b"\0")
            digest.update(path.read_bytes() if path.suffix != ".deb" else path.name.encode())
        return digest.hexdigest()[:16]

    def _wanted_digest(self) -> str:
        env = (self.bundle / "taskserv.env").read_text()
        for line in env.splitlines():
            if line.startswith("DIGEST="):
                return shlex.split(line.split("=", 1)[1])[0]
        raise TaskservError(f"{self.bundle}: not rendered")

    # -- there: over SSH ---------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """What the server has: installed with these files and settings, and healthy?"""
        done = self._run_installed("check", 3, self._wanted_digest(), check=False)
        return {
            "taskserv": self.name,
            "version": self.definition.version,
            "hostname": self.hostname,
            "address": self.ssh.endpoint.address,
            "installed": done.code in (0, 1),
            "healthy": done.code == 0,
            "reason": done.stdout.strip().splitlines()[-1] if done.stdout.strip() else "",
            "service": bool(self.definition.service_argv),
            "source": self.definition.source,
        }

    def _run_installed(
        self, script: str, absent_exit: int, *args: str, check: bool = True
    ) -> Completed:
        """Run ``script``.sh of the installed bundle (``home``, then ``args``, as its
        arguments); with no bundle there it exits ``absent_exit``."""
        arguments = " ".join(f'"${n}"' for n in range(1, len(args) + 2))
        found = f'test -f "$1/{script}.sh" || exit {absent_exit}'
        shell = f'{found}; exec sh "$1/{script}.sh" {arguments}'
        return self.ssh.run(["sh", "-c", shell, script, self.home, *args], check=check)

    def upload(self) -> dict[str, Any]:
        remote = f"{REMOTE_BUNDLES}/{self.name}"
        self.ssh.run(
            ["sh", "-c", 'rm -rf "$1" && mkdir -p "$2"', "prepare", remote, REMOTE_BUNDLES]
        )
        self.ssh.upload(self.bundle, remote)
        size = sum(p.stat().st_size for p in self.bundle.rglob("*") if p.is_file())
        return {"taskserv": self.name, "uploaded_to": remote, "bytes": size}

    def install(self) -> dict[str, Any]:
        remote = f"{REMOTE_BUNDLES}/{self.name}"
        done = self.ssh.run(["sh", f"{remote}/install.sh", remote])
        return {"taskserv": self.name, "output": done.stdout.strip()}

    def check(self) -> dict[str, Any]:
        """The health check: exit 1 (the task fails) unless healthy."""
        found = self.status()
        if not found["healthy"]:
            reason = found["reason"] or "no answer"
            raise TaskservError(f"server {self.hostname}: {self.name} check failed: {reason}")
        return found

    def remove(self) -> dict[str, Any]:
        done = self._run_installed("remove", 0)
        return {"taskserv": self.name, "output": done.stdout.strip()}

    # -- the verbs ------------------------------------------------------------------------

    def prepare(self) -> dict[str, Any]:
        rendered = self.render()
        return {**self.status(), "files": rendered["files"], "packages": rendered["packages"]}

    def apply(self) -> dict[str, Any]:
        self.upload()
        self.install()
        checked = self.check()
        return {**self.record(), "healthy": checked["healthy"]}

    def uninstall(self) -> dict[str, Any]:
        self.render()
        if not self.status()["installed"]:
            return {**self.forget(), "changed": False}
        self.remove()
        return {**self.forget(), "changed": True}

    def close(self) -> None:
        if self._ssh is not None:
            self._ssh.close()

    # -- here: what is recorded ----------------------------------------------------------------

    def record(self) -> dict[str, Any]:
        info: dict[str, Any] = {
            "version": self.definition.version,
            # What `--check` compares the definition with (`~ update` old -> new).
            "settings": self.definition.settings,
            "installed_at": time.time(),
            "address": self._host_address(self.server),
        }
        port = self.definition.settings.get("port")
        if self.definition.service_argv and port:
            info["port"] = int(port)
            if self.definition.check.get("http"):
                info["url"] = f"http://{info['address']}:{port}/"
        state.record_taskserv(self.workspace_dir, self.infra_name, self.hostname, self.name, info)
        return {"taskserv": self.name, "hostname": self.hostname, **info}

    def forget(self) -> dict[str, Any]:
        state.record_taskserv(self.workspace_dir, self.infra_name, self.hostname, self.name, None)
        return {"taskserv": self.name, "hostname": self.hostname, "removed": True}


VERBS = ("prepare", "apply", "uninstall", "status")


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in VERBS:
        print(
            f"usage: python -m provisioning.taskservs.tool {{{','.join(VERBS)}}}", file=sys.stderr
        )
        return 2
    params = json.loads(os.environ.get("PROVISIONING_PARAMS", "{}"))
    job: Job | None = None
    try:
        job = Job(params)
        if argv[0] == "status":
            job.render()
        print(json.dumps(getattr(job, argv[0])()))
    except (KeyError, ValueError) as exc:
        print(f"taskserv {argv[0]}: bad parameters: {exc}", file=sys.stderr)
        return 1
    except (SshError, EndpointError, PackageError, CatalogError, TaskservError) as exc:
        print(str(exc), file=sys.stderr)
        return 1
    except Exception as exc:
        print(f"taskserv {argv[0]}: {exc}", file=sys.stderr)
        return 1
    finally:
        if job is not None:
            job.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
