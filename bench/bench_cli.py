"""CLI start-up benchmark (issue 13, item 6): wall time of the quick commands of the
real console script, side by side with ``terraform version`` (when the binary is
present), ``git --version`` and a bare ``python -c pass``.

    .venv/bin/python bench/bench_cli.py [--runs N]

Each command runs N times (default 30) in turn with the others, so a busy moment of
the machine hits them alike; the median and the 90th percentile are reported. The
``provisioning`` runs get an isolated configuration (no user or system file) and no
orchestrator is started: ``task list`` is measured up to its "not reachable" answer.
Target: median under 150 ms for ``provisioning --help``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_queue import free_port, isolated_env, machine_info

RESULTS = Path(__file__).resolve().parent / "results"
BIN = Path(sys.executable).parent


def commands() -> dict[str, list[str]]:
    cli = str(BIN / "provisioning")
    found: dict[str, list[str]] = {
        "provisioning --help": [cli, "--help"],
        "provisioning version": [cli, "version"],
        "provisioning env": [cli, "env"],
        "provisioning task list": [cli, "task", "list"],
        "python -c pass": [sys.executable, "-c", "pass"],
    }
    for name, argv in (
        ("terraform version", ["terraform", "version"]),
        ("git --version", ["git", "--version"]),
    ):
        binary = shutil.which(argv[0])
        if binary:
            found[name] = [binary, *argv[1:]]
    return found


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure(runs: int) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Wall time and CPU time (user + system, of the process and its children) per run."""
    timings: dict[str, list[float]] = {}
    cpu: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as home:
        env = isolated_env(Path(home))
        # An endpoint where nothing listens: version and task list stop at "not reachable".
        env["PROVISIONING_SERVER_PORT"] = str(free_port())
        env["CHECKPOINT_DISABLE"] = "1"  # Terraform's version check goes online otherwise.
        table = commands()
        for _ in range(runs):
            for name, argv in table.items():
                began, cpu_before = time.perf_counter(), _children_cpu()
                subprocess.run(
                    argv, env=env, cwd=home, capture_output=True, check=False, timeout=60
                )
                timings.setdefault(name, []).append(time.perf_counter() - began)
                cpu.setdefault(name, []).append(_children_cpu() - cpu_before)
    return timings, cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--output", type=Path, default=RESULTS / "cli.json")
    args = parser.parse_args(argv)
    timings, cpu = measure(args.runs)
    summary = {
        name: {
            "median_ms": round(statistics.median(values) * 1000, 1),
            "p90_ms": round(sorted(values)[int(len(values) * 0.9) - 1] * 1000, 1),
            "cpu_median_ms": round(statistics.median(cpu[name]) * 1000, 1),
            "runs": len(values),
        }
        for name, values in timings.items()
    }
    m = machine_info()
    print(f"Machine: {m['nproc']} CPU ({m['cpu']}), Python {m['python']}; {args.runs} runs each")
    print(f"Command: {' '.join([Path(sys.executable).name, *sys.argv])}\n")
    print(f"Load average at the end: {os.getloadavg()[0]:.2f}\n")
    print("| command | median wall | p90 wall | median CPU |\n|---|---|---|---|")
    for name, row in summary.items():
        print(
            f"| `{name}` | {row['median_ms']:.0f} ms | {row['p90_ms']:.0f} ms "
            f"| {row['cpu_median_ms']:.0f} ms |"
        )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(
        json.dumps({"machine": m, "runs": args.runs, "results": summary}, indent=2) + "\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
