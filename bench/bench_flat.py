"""Flat cost and the user's wait (issue 14): make -j10, Terraform and the project side by
side in one run, over four workloads in both workflow forms, then a scale series.

    .venv/bin/python bench/bench_flat.py [--repeats N] [--sizes 500,5000,10000]

Workloads: fan 1 -> 200 -> 1 of ``true``; 10 layers x 20 of ``sleep 0.1``; a chain of 40
``true``; a chain of 40 ``nu -n -c null``. Forms: "items" (a layer is one operation with
one item per task) and "nodes" (one operation per task, ``depends_on`` every task of the
previous layer). The project is timed as the user waits, ``provisioning workflow submit
FILE --wait --json`` from exec to exit, and on the server, ``completed_at - created_at``
of the record it prints. Medians of N interleaved runs; Terraform once per workload.
Scale: layers of 100 ``true`` (nodes form: 9,900 edges between two layers, ~1M at
10,000 tasks), a fresh daemon per point: per-task cost and the daemon's peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from bench_dag import Dag, layered, makefile_for, terraform_for, workflow_for
from bench_queue import (
    Daemon,
    compile_package,
    isolated_env,
    machine_info,
    report_head,
    save_results,
    table,
)

RESULTS = Path(__file__).resolve().parent / "results"
CLI = Path(sys.executable).parent / "provisioning"
BODY_LIMIT = 256 * 1024 * 1024


def nu_binary() -> str:
    tools = Path(__file__).resolve().parent.parent / ".tools"
    found = shutil.which("nu") or next(iter(tools.glob("nushell/**/bin/nu")), None)
    if found is None:
        raise SystemExit("bench_flat: no nu binary (run ./scripts/setup.sh)")
    return str(found)


def workloads() -> list[Dag]:
    nu = nu_binary()
    return [
        layered("fan 1->200->1 true", [1, 200, 1], "true"),
        layered("10 layers x 20 sleep 0.1", [20] * 10, "sleep 0.1"),
        layered("chain 40 true", [1] * 40, "true"),
        layered("chain 40 nu -n -c null", [1] * 40, f"{nu} -n -c null"),
    ]


def timed(
    argv: list[str], cwd: str, env: dict[str, str] | None = None, timeout: float | None = None
) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(
        argv, cwd=cwd, env=env, check=True, capture_output=True, text=True, timeout=timeout
    )
    return time.perf_counter() - start, done.stdout


def make_once(dag: Dag, tmp: str) -> float:
    path = Path(tmp) / "Makefile"
    if not path.exists():
        path.write_text(makefile_for(dag))
    return timed(["make", "-j10", "-f", str(path), "all"], tmp)[0]


def terraform_once(dag: Dag) -> float | None:
    binary = shutil.which("terraform")
    if binary is None:
        return None
    with tempfile.TemporaryDirectory(prefix="bench-flat-tf-") as tmp:
        (Path(tmp) / "main.tf").write_text(terraform_for(dag))
        timed([binary, "init", "-input=false"], tmp)
        apply = [binary, "apply", "-auto-approve", "-input=false", "-parallelism=10"]
        return timed(apply, tmp)[0]


class Project:
    """One daemon of ours, and the CLI pointed at it."""

    def __init__(self, home: Path) -> None:
        data = home / "data"
        data.mkdir()
        self.env = isolated_env(home)
        self.env["PROVISIONING_SERVER_MAX_BODY_BYTES"] = str(BODY_LIMIT)
        self.daemon = Daemon(data_dir=data, env=self.env, concurrency=10)
        self.daemon.start()
        self.cli_env = {
            **self.env,
            "PROVISIONING_ORCHESTRATOR_ENDPOINT": self.daemon.url,
            "PROVISIONING_STORAGE_DATA_DIR": str(data),
        }
        self.home = home

    def run(self, workflow: dict[str, Any], timeout: float = 300) -> dict[str, float]:
        path = self.home / "workflow.json"
        path.write_text(json.dumps(workflow))
        argv = [str(CLI), "workflow", "submit", str(path), "--wait", "--json"]
        user, out = timed(argv, str(self.home), self.cli_env, timeout)
        record = json.loads(out)
        assert record["status"] == "completed", record["status"]
        created = datetime.fromisoformat(record["created_at"]).timestamp()
        server = datetime.fromisoformat(record["completed_at"]).timestamp() - created
        return {"user_s": user, "server_s": server}

    def peak_rss_mb(self) -> float:
        for line in Path(f"/proc/{self.daemon.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
        return 0.0

    def stop(self) -> None:
        self.daemon.stop()


def side_by_side(dag: Dag, repeats: int) -> dict[str, Any]:
    forms = {"items": True, "nodes": False}
    runs: dict[str, list[float]] = {"make": []}
    with tempfile.TemporaryDirectory(prefix="bench-flat-") as tmp:
        projects = {}
        for form in forms:
            (Path(tmp) / form).mkdir()
            projects[form] = Project(Path(tmp) / form)
        try:
            for _ in range(repeats):  # interleaved: a busy moment hits all alike
                runs["make"].append(make_once(dag, tmp))
                for form, items in forms.items():
                    got = projects[form].run(workflow_for(dag, 10, fan_in_as_items=items))
                    runs.setdefault(f"{form}_user", []).append(got["user_s"])
                    runs.setdefault(f"{form}_server", []).append(got["server_s"])
        finally:
            for project in projects.values():
                project.stop()
    row: dict[str, Any] = {"workload": dag.name, "tasks": dag.tasks}
    row.update({k: round(statistics.median(v), 3) for k, v in runs.items()})
    tf = terraform_once(dag)
    row["terraform"] = None if tf is None else round(tf, 3)
    return row


def scale_point(size: int, form: str, timeout: float) -> dict[str, Any]:
    dag = layered(f"scale-{size}", [100] * (size // 100), "true")
    workflow = workflow_for(dag, 10, fan_in_as_items=form == "items")
    edges = sum(len(op.get("depends_on", [])) for op in workflow["operations"])
    row: dict[str, Any] = {"tasks": size, "form": form, "edges": edges}
    with tempfile.TemporaryDirectory(prefix="bench-flat-scale-") as tmp:
        row["make_s"] = round(make_once(dag, tmp), 3)
        (Path(tmp) / "p").mkdir()
        project = Project(Path(tmp) / "p")
        try:
            row["body_mb"] = round(len(json.dumps(workflow)) / 1e6, 1)
            got = project.run(workflow, timeout)
            row.update({k: round(v, 3) for k, v in got.items()})
            row["server_ms_per_task"] = round(1000 * got["server_s"] / size, 3)
            row["user_ms_per_task"] = round(1000 * got["user_s"] / size, 3)
            row["peak_rss_mb"] = project.peak_rss_mb()
        except subprocess.CalledProcessError as exc:
            row["error"] = (exc.stderr or exc.stdout or "").strip()[-300:]
        except subprocess.TimeoutExpired:
            row["error"] = f"not done after {timeout:.0f} s"
        finally:
            project.stop()
    return row


def render(res: dict[str, Any]) -> str:
    tools = (
        f", {res['machine']['make']}, {res['terraform_version']}; medians of "
        f"{res['repeats']} interleaved runs (Terraform: one run)."
    )
    workloads = [
        [
            r["workload"],
            f"{r['make']} s",
            "unavailable" if r["terraform"] is None else f"{r['terraform']} s",
            *(f"{r[k]} s" for k in ("items_user", "items_server", "nodes_user", "nodes_server")),
        ]
        for r in res["workloads"]
    ]
    scale = [
        [r["tasks"], r["form"], r["edges"], f"{r.get('body_mb')} MB", f"{r['make_s']} s"]
        + (
            [f"failed: {r['error'][:80]}", "", "", ""]
            if "error" in r
            else [
                f"{r['user_s']} s",
                f"{r['server_s']} s",
                r["server_ms_per_task"],
                f"{r['peak_rss_mb']} MB",
            ]
        )
        for r in res["scale"]
    ]
    lines = [
        *report_head("### bench_flat.py", res, tools),
        *table(
            [
                "workload",
                "make -j10",
                "Terraform",
                "items: user",
                "items: server",
                "nodes: user",
                "nodes: server",
            ],
            workloads,
        ),
        "",
        *table(
            [
                "scale (layers of 100 `true`)",
                "form",
                "edges",
                "body",
                "make -j10",
                "user",
                "server",
                "server ms/task",
                "daemon peak RSS",
            ],
            scale,
        ),
    ]
    return "\n".join(lines)


def terraform_version() -> str:
    binary = shutil.which("terraform")
    if binary is None:
        return "Terraform unavailable"
    out = subprocess.run([binary, "version"], capture_output=True, text=True).stdout
    return out.splitlines()[0] if out else "Terraform"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--sizes", default="500,5000,10000")
    parser.add_argument("--forms", default="items,nodes", help="forms of the scale series")
    parser.add_argument("--skip-workloads", action="store_true")
    parser.add_argument("--timeout", type=float, default=900, help="per scale point, s")
    parser.add_argument("--output", type=Path, default=RESULTS / "flat.json")
    args = parser.parse_args(argv)
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    compile_package()
    res: dict[str, Any] = {
        "when": datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": "python bench/bench_flat.py " + " ".join(argv or sys.argv[1:]),
        "machine": machine_info(),
        "terraform_version": terraform_version(),
        "repeats": args.repeats,
        "workloads": []
        if args.skip_workloads
        else [side_by_side(dag, args.repeats) for dag in workloads()],
        "scale": [
            scale_point(int(size), form, args.timeout)
            for size in args.sizes.split(",")
            for form in args.forms.split(",")
        ],
    }
    save_results(res, args.output)
    print(render(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
