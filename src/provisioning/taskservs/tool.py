"""``python -m provisioning.taskservs.tool VERB``: the steps a taskserv's Nushell
install module calls (templates, state, services). Reads the task's parameters
from ``PROVISIONING_PARAMS``; prints one JSON document.

Verbs: status, render, unrender, start, stop, record, forget.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import jinja2

from ..execution.procfs import start_ticks
from ..infra import load_infra, state
from ..providers.base import ProviderContext
from ..providers.local import server_dir, stop_services
from .catalog import TaskservDef, resolve

SERVICE_READY_SECONDS = 15.0


class Job:
    """One taskserv on one server, from the task's parameters."""

    def __init__(self, params: dict[str, Any]) -> None:
        self.workspace_dir = Path(params["workspace_dir"])
        self.infra_name = str(params["infra"])
        self.hostname = str(params.get("hostname") or params["item"])
        name = str(params["taskserv"])
        if "version" in params and isinstance(params.get("settings"), dict):
            found = resolve(name, self.workspace_dir)
            self.definition: TaskservDef = replace(
                found, version=str(params["version"]), settings=dict(params["settings"])
            )
        else:
            infra = load_infra(self.workspace_dir, self.infra_name)
            self.definition = resolve(name, self.workspace_dir, infra)
        context = ProviderContext(
            workspace=self.workspace_dir.name,
            workspace_dir=self.workspace_dir,
            infra=self.infra_name,
        )
        self.root = server_dir(context, self.hostname)
        if not (self.root / "server.json").is_file():
            raise SystemExit(
                f"server {self.hostname} does not exist in infra {self.infra_name} "
                "(create it first: provisioning server create)"
            )

    @property
    def name(self) -> str:
        return self.definition.name

    def installed(self) -> dict[str, Any] | None:
        server = state.read_state(self.workspace_dir, self.infra_name)["servers"].get(self.hostname)
        found: dict[str, Any] | None = (server or {}).get("taskservs", {}).get(self.name)
        return found

    def status(self) -> dict[str, Any]:
        current = self.installed()
        return {
            "taskserv": self.name,
            "version": self.definition.version,
            "hostname": self.hostname,
            "root": str(self.root),
            "service": self.definition.service,
            "installed": current is not None and current.get("version") == self.definition.version,
            "source": self.definition.source,
        }

    def _templates(self) -> list[Path]:
        folder = self.definition.folder / "templates"
        return sorted(p for p in folder.rglob("*.j2") if p.is_file()) if folder.is_dir() else []

    def render(self) -> dict[str, Any]:
        env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(self.definition.folder / "templates"),
            undefined=jinja2.StrictUndefined,
            autoescape=jinja2.select_autoescape(["html"]),
            keep_trailing_newline=True,
        )
        server = json.loads((self.root / "server.json").read_text(encoding="utf-8"))
        values = {
            "server": server,
            "settings": self.definition.settings,
            "version": self.definition.version,
            "infra": self.infra_name,
            "root": str(self.root),
        }
        written = []
        for template in self._templates():
            relative = template.relative_to(self.definition.folder / "templates").with_suffix("")
            target = self.root / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            rendered = env.get_template(relative.as_posix() + ".j2").render(values)
            target.write_text(rendered, encoding="utf-8")
            written.append(str(relative))
        return {"taskserv": self.name, "files": written}

    def unrender(self) -> dict[str, Any]:
        removed = []
        for template in self._templates():
            relative = template.relative_to(self.definition.folder / "templates").with_suffix("")
            (self.root / relative).unlink(missing_ok=True)
            removed.append(str(relative))
        return {"taskserv": self.name, "files": removed}

    def start(self) -> dict[str, Any]:
        port = int(self.definition.settings.get("port", 0)) or _free_port()
        fill = {"python": sys.executable, "root": str(self.root), "port": str(port)}
        argv = [arg.format(**fill) for arg in self.definition.service_argv]
        run = self.root / "run"
        run.mkdir(parents=True, exist_ok=True)
        log = open(self.root / "var" / "log" / f"{self.name}.log", "ab")  # noqa: SIM115
        with log:
            # A service outlives its install task: a session of its own, no pipes to us.
            process = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
            )
        # The start time tells, later, whether this pid is still our service.
        ticks = start_ticks(process.pid) or 0
        (run / f"{self.name}.pid").write_text(f"{process.pid} {ticks}\n")
        (run / f"{self.name}.port").write_text(f"{port}\n")
        deadline = time.monotonic() + SERVICE_READY_SECONDS
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise SystemExit(f"{self.name} exited with code {process.returncode} at start")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                time.sleep(0.05)
        else:
            raise SystemExit(f"{self.name} did not listen on 127.0.0.1:{port} in time")
        return {"pid": process.pid, "port": port, "url": f"http://127.0.0.1:{port}/"}

    def stop(self) -> dict[str, Any]:
        stopped = stop_services(self.root, only=self.name)
        (self.root / "run" / f"{self.name}.port").unlink(missing_ok=True)
        return {"stopped": stopped}

    def record(self) -> dict[str, Any]:
        info: dict[str, Any] = {"version": self.definition.version, "installed_at": time.time()}
        port_file = self.root / "run" / f"{self.name}.port"
        if port_file.exists():
            info["port"] = int(port_file.read_text())
            info["url"] = f"http://127.0.0.1:{info['port']}/"
        state.record_taskserv(self.workspace_dir, self.infra_name, self.hostname, self.name, info)
        return {"taskserv": self.name, "hostname": self.hostname, **info}

    def forget(self) -> dict[str, Any]:
        state.record_taskserv(self.workspace_dir, self.infra_name, self.hostname, self.name, None)
        return {"taskserv": self.name, "hostname": self.hostname, "removed": True}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


VERBS = ("status", "render", "unrender", "start", "stop", "record", "forget")


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in VERBS:
        print(
            f"usage: python -m provisioning.taskservs.tool {{{','.join(VERBS)}}}", file=sys.stderr
        )
        return 2
    params = json.loads(os.environ.get("PROVISIONING_PARAMS", "{}"))
    try:
        job = Job(params)
        print(json.dumps(getattr(job, argv[0])()))
    except (KeyError, ValueError) as exc:
        print(f"taskserv {argv[0]}: bad parameters: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        print(f"taskserv {argv[0]}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
