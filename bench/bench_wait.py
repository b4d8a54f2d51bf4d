"""What the user waits for (issue 14): ``provisioning workflow submit FILE --wait --json``
from the shell prompt to its exit, against ``make -j10`` and ``terraform apply
-parallelism=10`` on the same DAG, side by side, runs interleaved, medians.

    .venv/bin/python bench/bench_wait.py [--runs 5]

Workloads: fan 1 -> 200 -> 1 of ``true``; 10 layers x 20 of ``sleep 0.1``; a chain of
40 ``true``; a chain of 40 ``nu -n -c null``. Each in the one-operation-per-node form
(every node an operation with its ``depends_on``). One daemon (SQLite, concurrency 10)
serves every run of the project; "server" is the workflow's own ``created_at`` to
``completed_at``, "user" the CLI's wall time (its start-up, the submit, the wait, the
exit). Results in ``bench/results/wait.json``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench_dag import Dag, layered, makefile_for, terraform_for, workflow_for
from bench_queue import RESULTS_DIR, machine_info, running_daemon

ROOT = Path(__file__).resolve().parents[1]
PROVISIONING = ROOT / ".venv" / "bin" / "provisioning"
NU = ROOT / ".tools" / "nushell" / "node_modules" / "@nushell" / "linux-x64" / "bin" / "nu"


def workloads() -> list[Dag]:
    nu = str(NU) if NU.exists() else shutil.which("nu") or "nu"
    return [
        layered("fan 1->200->1 true", [1, 200, 1], "true"),
        layered("10 layers x 20 sleep 0.1", [20] * 10, "sleep 0.1"),
        layered("chain 40 true", [1] * 40, "true"),
        layered("chain 40 nu -n -c null", [1] * 40, f"{nu} -n -c null"),
    ]


def _timed(argv: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(argv, cwd=cwd, check=True, capture_output=True)
    return time.perf_counter() - start


def _epoch(value: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(value).timestamp()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--output", type=Path, default=RESULTS_DIR / "wait.json")
    args = parser.parse_args(argv)
    terraform = shutil.which("terraform")
    rows = []
    with running_daemon(10) as daemon, tempfile.TemporaryDirectory(prefix="bench-wait-") as tmp:
        base = Path(tmp)
        config = base / "provisioning.toml"
        config.write_text(
            f'[server]\nport = {daemon.port}\n\n[storage]\ndata_dir = "{daemon.data_dir}"\n'
        )
        env = {**daemon.env, "PROVISIONING_CONFIG": str(config)}
        for n, dag in enumerate(workloads()):
            folder = base / f"w{n}"
            folder.mkdir()
            (folder / "Makefile").write_text(makefile_for(dag))
            spec = folder / "workflow.json"
            spec.write_text(json.dumps({**workflow_for(dag, 10), "name": f"bench-wait-{n}"}))
            if terraform:
                (folder / "main.tf").write_text(terraform_for(dag))
                subprocess.run(
                    [terraform, "init", "-input=false"], cwd=folder, check=True, capture_output=True
                )
            make_s, tf_s, user_s, server_s = [], [], [], []
            for _ in range(args.runs):
                make_s.append(_timed(["make", "-j10", "all"], folder))
                if terraform:
                    destroy = [terraform, "destroy", "-auto-approve", "-input=false"]
                    _timed(destroy, folder)
                    apply = [terraform, "apply", "-auto-approve", "-input=false"]
                    tf_s.append(_timed([*apply, "-parallelism=10"], folder))
                start = time.perf_counter()
                done = subprocess.run(
                    [str(PROVISIONING), "workflow", "submit", str(spec), "--wait", "--json"],
                    cwd=folder,
                    env=env,
                    check=True,
                    capture_output=True,
                    text=True,
                )
                user_s.append(time.perf_counter() - start)
                final = json.loads(done.stdout)
                assert final["status"] == "completed", final
                server_s.append(_epoch(final["completed_at"]) - _epoch(final["created_at"]))
            row: dict[str, Any] = {
                "workload": dag.name,
                "tasks": dag.tasks,
                "make_s": round(statistics.median(make_s), 3),
                "terraform_s": round(statistics.median(tf_s), 3) if tf_s else None,
                "user_s": round(statistics.median(user_s), 3),
                "server_s": round(statistics.median(server_s), 3),
            }
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({"machine": machine_info(), "rows": rows}, indent=2))
    print(f"{json.dumps(machine_info())}; medians of {args.runs} interleaved runs\n")
    print("| workload | make -j10 | Terraform | project, user waits | project, server |")
    print("|---|---|---|---|---|")
    for r in rows:
        tf = f"{r['terraform_s']:.3f} s" if r["terraform_s"] is not None else "n/a"
        print(
            f"| {r['workload']} | {r['make_s']:.3f} s | {tf} | {r['user_s']:.3f} s "
            f"| {r['server_s']:.3f} s |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
