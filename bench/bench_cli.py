"""CLI start-up benchmark (issue 13, item 6; issue 14, point 3): wall time of the quick
commands of the real console script, side by side with ``terraform version`` (when the
binary is present), ``git --version`` and a bare ``python -c pass``.

    .venv/bin/python bench/bench_cli.py [--runs N]
    .venv/bin/python bench/bench_cli.py --wait [--before /work/main/.venv/bin] [--runs N]

With ``--wait``: the commands a user waits on, against one orchestrator started for the
purpose -- ``--help``, ``version``, ``task list``, and ``workflow submit FILE --wait
--json`` for one ``true`` and a chain of 40, where the workflow's own created_at ->
completed_at (the server's time) is reported beside the wall time; ``--before`` names
another venv's ``bin`` (another checkout's CLI, e.g. main's), run interleaved with this
one against the same daemon.

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

from bench_queue import Daemon, compile_package, free_port, isolated_env, machine_info

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


def _workflow(name: str, length: int) -> dict[str, object]:
    ops: list[dict[str, object]] = [{"id": "t0", "run": {"command": ["true"]}}]
    ops += [
        {"id": f"t{i}", "run": {"command": ["true"]}, "depends_on": [f"t{i - 1}"]}
        for i in range(1, length)
    ]
    return {"name": name, "parallel_limit": 10, "operations": ops}


def measure_wait(runs: int, bins: dict[str, Path]) -> dict[str, dict[str, list[float]]]:
    """Per CLI (label -> venv bin) and command: wall times, and for the workflows the
    server's time as ``<command> (server)``."""
    from datetime import datetime

    found: dict[str, dict[str, list[float]]] = {label: {} for label in bins}
    with tempfile.TemporaryDirectory(prefix="bench-cli-") as tmp:
        home = Path(tmp)
        data = home / "data"
        data.mkdir()
        env = isolated_env(home)
        daemon = Daemon(data_dir=data, env=env, concurrency=10)
        daemon.start()
        try:
            env = {
                **env,
                "PROVISIONING_ORCHESTRATOR_ENDPOINT": daemon.url,
                "PROVISIONING_STORAGE_DATA_DIR": str(data),
            }
            for name, length in (("one", 1), ("chain40", 40)):
                (home / f"{name}.json").write_text(json.dumps(_workflow(name, length)))
            table = {
                "--help": ["--help"],
                "version": ["version"],
                "task list": ["task", "list"],
                "workflow submit one.json --wait --json": [
                    "workflow",
                    "submit",
                    "one.json",
                    "--wait",
                    "--json",
                ],
                "workflow submit chain40.json --wait --json": [
                    "workflow",
                    "submit",
                    "chain40.json",
                    "--wait",
                    "--json",
                ],
            }
            for _ in range(runs):
                for label, bin_dir in bins.items():
                    for name, args in table.items():
                        began = time.perf_counter()
                        done = subprocess.run(
                            [str(bin_dir / "provisioning"), *args],
                            env=env,
                            cwd=home,
                            capture_output=True,
                            text=True,
                            timeout=60,
                            check=True,
                        )
                        found[label].setdefault(name, []).append(time.perf_counter() - began)
                        if "--wait" in args:
                            record = json.loads(done.stdout)
                            assert record["status"] == "completed", record["status"]
                            server = datetime.fromisoformat(
                                record["completed_at"]
                            ) - datetime.fromisoformat(record["created_at"])
                            found[label].setdefault(f"{name} (server)", []).append(
                                server.total_seconds()
                            )
        finally:
            daemon.stop()
    return found


def report_wait(args: argparse.Namespace) -> int:
    bins = {"this": BIN}
    if args.before is not None:
        bins = {"before": args.before, **bins}
    found = measure_wait(args.runs, bins)
    medians = {
        label: {name: statistics.median(values) * 1000 for name, values in rows.items()}
        for label, rows in found.items()
    }
    m = machine_info()
    print(f"Machine: {m['nproc']} CPU ({m['cpu']}), Python {m['python']}; {args.runs} runs each")
    print(f"Command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    print(f"Load average at the end: {os.getloadavg()[0]:.2f}\n")
    labels = list(bins)
    print("| command | " + " | ".join(f"{label}: median wall" for label in labels) + " |")
    print("|---|" + "---|" * len(labels))
    for name in found["this"]:
        if name.endswith("(server)"):
            continue
        cells = []
        for label in labels:
            cell = f"{medians[label][name]:.0f} ms"
            server = medians[label].get(f"{name} (server)")
            if server is not None:
                cell += f" (server {server:.0f} ms, CLI {medians[label][name] - server:.0f} ms)"
            cells.append(cell)
        print(f"| `provisioning {name}` | " + " | ".join(cells) + " |")
    output = args.output if args.output != RESULTS / "cli.json" else RESULTS / "cli-wait.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(
        json.dumps(
            {
                "machine": m,
                "runs": args.runs,
                "bins": {k: str(v) for k, v in bins.items()},
                "median_ms": medians,
            },
            indent=2,
        )
        + "\n"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--output", type=Path, default=RESULTS / "cli.json")
    parser.add_argument("--wait", action="store_true", help="the commands a user waits on")
    parser.add_argument("--before", type=Path, help="another venv's bin, run interleaved")
    args = parser.parse_args(argv)
    compile_package()
    if args.wait:
        return report_wait(args)
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
