"""Workflow DAG benchmark (issue 4): the same DAG on the orchestrator, ``make -jN`` and,
where the ``terraform`` binary is present, Terraform, side by side in one run.

    .venv/bin/python bench/bench_dag.py [--quick]

(a) 10 layers x 20 tasks of ``sleep 0.1``, each depending on the whole previous
    layer, N = 10 (target: <= 1.1x make);
(b) 1 -> 200 -> 1 tasks of ``true``, N = 10 (target: <= 3x make);
both at least 3x faster than Terraform. And a scale check: a 1,000- and a
10,000-task DAG (layers of 100 ``true`` tasks): daemon peak memory and per-task
scheduling cost, which must stay flat.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from bench_queue import Daemon, machine_info, report_head, running_daemon, save_results, table

RESULTS = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True)
class Dag:
    """Layers of task names; every task depends on every task of the previous layer."""

    name: str
    layers: list[list[str]]
    command: str  # a shell-free argv, space separated

    @property
    def tasks(self) -> int:
        return sum(len(layer) for layer in self.layers)


def layered(name: str, widths: list[int], command: str) -> Dag:
    return Dag(name, [[f"l{i}_t{j}" for j in range(w)] for i, w in enumerate(widths)], command)


# -- the three runners ---------------------------------------------------------------


def workflow_for(dag: Dag, parallel: int, *, fan_in_as_items: bool = False) -> dict[str, Any]:
    """The DAG as a workflow. With ``fan_in_as_items`` a layer is one operation with one
    item per task (one dependency edge per layer: how a large fan-out is written)."""
    argv = dag.command.split()
    operations: list[dict[str, Any]] = []
    if fan_in_as_items:
        for i, layer in enumerate(dag.layers):
            op: dict[str, Any] = {"id": f"l{i}", "run": {"command": argv}}
            if len(layer) > 1:
                op["items"] = list(range(len(layer)))
            if i:
                op["depends_on"] = [f"l{i - 1}"]
            operations.append(op)
    else:
        for i, layer in enumerate(dag.layers):
            for task in layer:
                op = {"id": task, "run": {"command": argv}}
                if i:
                    op["depends_on"] = dag.layers[i - 1]
                operations.append(op)
    return {"name": dag.name, "parallel_limit": parallel, "operations": operations}


def makefile_for(dag: Dag) -> str:
    lines = [".PHONY: all " + " ".join(t for layer in dag.layers for t in layer), ""]
    lines.append("all: " + " ".join(dag.layers[-1]))
    for i, layer in enumerate(dag.layers):
        deps = " ".join(dag.layers[i - 1]) if i else ""
        for task in layer:
            lines += [f"{task}: {deps}".rstrip(), f"\t@{dag.command}"]
    return "\n".join(lines) + "\n"


def terraform_for(dag: Dag) -> str:
    blocks = []
    for i, layer in enumerate(dag.layers):
        for task in layer:
            deps = ", ".join(f"terraform_data.{t}" for t in dag.layers[i - 1]) if i else ""
            blocks.append(
                f'resource "terraform_data" "{task}" {{\n'
                f"  depends_on = [{deps}]\n"
                f'  provisioner "local-exec" {{\n    command = "{dag.command}"\n  }}\n}}\n'
            )
    return "\n".join(blocks)


def run_make(dag: Dag, jobs: int, repeats: int) -> float:
    with tempfile.TemporaryDirectory(prefix="bench-dag-make-") as tmp:
        path = Path(tmp) / "Makefile"
        path.write_text(makefile_for(dag))
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            subprocess.run(["make", f"-j{jobs}", "-f", str(path), "all"], check=True, cwd=tmp)
            best = min(best, time.perf_counter() - start)
        return best


def run_terraform(dag: Dag, jobs: int) -> float | None:
    binary = shutil.which("terraform")
    if binary is None:
        return None
    with tempfile.TemporaryDirectory(prefix="bench-dag-tf-") as tmp:
        (Path(tmp) / "main.tf").write_text(terraform_for(dag))
        subprocess.run([binary, "init", "-input=false"], cwd=tmp, check=True, capture_output=True)
        start = time.perf_counter()
        subprocess.run(
            [binary, "apply", "-auto-approve", "-input=false", f"-parallelism={jobs}"],
            cwd=tmp,
            check=True,
            capture_output=True,
        )
        return time.perf_counter() - start


def _epoch(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def _run_workflow(daemon: Daemon, workflow: dict[str, Any], timeout: float) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=daemon.url, headers=daemon.headers, timeout=60) as http:
        cpu_before = sum(daemon.cpu_seconds())
        posted = time.time()
        response = await http.post("/workflows/batch/submit", json=workflow)
        response.raise_for_status()
        workflow_id = response.json()["workflow_id"]
        deadline = time.monotonic() + timeout
        while True:
            page = (await http.get("/workflows", params={"limit": 1})).json()["workflows"][0]
            if page["status"] not in ("queued", "running"):
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"workflow {workflow_id} not done after {timeout} s")
            await asyncio.sleep(0.02)  # polling interval of the benchmark client
        assert page["status"] == "completed", page
        cpu = sum(daemon.cpu_seconds()) - cpu_before
        return {
            "wall_s": round(_epoch(page["completed_at"]) - posted, 4),
            "created_to_completed_s": round(
                _epoch(page["completed_at"]) - _epoch(page["created_at"]), 4
            ),
            "daemon_cpu_s": round(cpu, 3),
            "peak_rss_mb": round(_peak_rss_mb(daemon.pid), 1),
            "tasks": page["tasks"]["total"],
        }


def run_orchestrator(
    dag: Dag, jobs: int, *, items: bool = False, timeout: float = 300
) -> dict[str, Any]:
    with running_daemon(jobs) as daemon:
        return asyncio.run(
            _run_workflow(daemon, workflow_for(dag, jobs, fan_in_as_items=items), timeout)
        )


def compare(dag: Dag, jobs: int, repeats: int, target: float) -> dict[str, Any]:
    make_s = run_make(dag, jobs, repeats)
    # Best of the same number of runs as make's, each on a fresh daemon: the machine is
    # shared and noisy, and short runs suffer most.
    orch = min((run_orchestrator(dag, jobs) for _ in range(repeats)), key=lambda r: r["wall_s"])
    tf = run_terraform(dag, jobs)
    return {
        "dag": dag.name,
        "tasks": dag.tasks,
        "jobs": jobs,
        "make_s": round(make_s, 4),
        "orchestrator": orch,
        "terraform_s": None if tf is None else round(tf, 3),
        "ratio_vs_make": round(orch["wall_s"] / make_s, 3),
        "target_vs_make": target,
        "speedup_vs_terraform": None if tf is None else round(tf / orch["wall_s"], 2),
    }


def scale(sizes: list[int], width: int, jobs: int) -> list[dict[str, Any]]:
    rows = []
    for size in sizes:
        dag = layered(f"scale-{size}", [width] * (size // width), "true")
        make_s = run_make(dag, jobs, 1)
        orch = run_orchestrator(dag, jobs, items=True, timeout=900)
        rows.append(
            {
                "tasks": size,
                "make_s": round(make_s, 3),
                **orch,
                "wall_ms_per_task": round(1000 * orch["wall_s"] / size, 3),
                "daemon_cpu_ms_per_task": round(1000 * orch["daemon_cpu_s"] / size, 3),
            }
        )
    return rows


def render(res: dict[str, Any]) -> str:
    terraform = res["terraform"] or "not installed (its column is empty)"
    tools = f", {res['machine']['make']}; terraform: {terraform}"
    shapes = [
        [
            row["dag"],
            row["tasks"],
            f"{row['make_s']} s",
            f"{row['orchestrator']['wall_s']} s",
            f"{row['ratio_vs_make']}x",
            f"<= {row['target_vs_make']}x",
            "-" if row["terraform_s"] is None else f"{row['terraform_s']} s",
            "-" if row["speedup_vs_terraform"] is None else f"{row['speedup_vs_terraform']}x",
        ]
        for row in res["shapes"]
    ]
    scale = [
        [
            f"{row['tasks']} tasks",
            f"{row['make_s']} s",
            f"{row['wall_s']} s",
            row["wall_ms_per_task"],
            row["daemon_cpu_ms_per_task"],
            f"{row['peak_rss_mb']} MB",
        ]
        for row in res["scale"]
    ]
    lines = [
        *report_head("## DAG benchmark", res, tools),
        *table(
            [
                "DAG",
                "tasks",
                "make -j10",
                "orchestrator",
                "ratio",
                "target",
                "terraform",
                "orch. vs terraform",
            ],
            shapes,
        ),
        "",
        *table(
            [
                "scale (layers of 100 `true`)",
                "make -j10",
                "orchestrator",
                "wall ms/task",
                "daemon CPU ms/task",
                "daemon peak RSS",
            ],
            scale,
        ),
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--output", type=Path, default=RESULTS / "dag.json")
    args = parser.parse_args(argv)
    jobs = 10
    repeats = 1 if args.quick else 3
    layers_a = [20] * (3 if args.quick else 10)
    fan = [1, 40 if args.quick else 200, 1]
    sizes = [200, 1000] if args.quick else [1000, 10000]
    res: dict[str, Any] = {
        "when": datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": "python bench/bench_dag.py" + (" --quick" if args.quick else ""),
        "machine": machine_info(),
        "terraform": shutil.which("terraform"),
        "shapes": [
            compare(layered("layers 10x20 sleep 0.1", layers_a, "sleep 0.1"), jobs, repeats, 1.1),
            compare(layered("1 -> 200 -> 1 true", fan, "true"), jobs, repeats, 3.0),
        ],
        "scale": scale(sizes, 100, jobs),
    }
    save_results(res, args.output)
    print(render(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
