"""Fan 1 -> N -> 1 of ``true`` against one or more source trees, interleaved: the server
time of each run and the CPU time per attempt of the daemon and of its supervisor.

    .venv/bin/python bench/bench_fan_cpu.py --trees base=/tmp/base/src,spawn=src \\
        [--fan 200] [--repeats 9] [--port 9450]

Each tree gets a daemon of its own (``PYTHONPATH`` pointing at the tree; ports from
``--port`` up); after one warm-up run each, the trees take turns. CPU times come from
/proc (user + system of the process, all its threads), read before and after each run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

from bench_dag import layered, workflow_for
from bench_queue import Daemon, isolated_env

CLI = Path(sys.executable).parent / "provisioning"


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def supervisor_of(data: Path) -> int:
    for entry in os.listdir("/proc"):
        try:
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"provisioning.execution.supervisor" in argv and str(data).encode() in argv:
            return int(entry)
    return 0


class Tree:
    def __init__(self, name: str, src: str, port: int) -> None:
        home = Path(tempfile.mkdtemp(prefix=f"bench-fan-{name}-"))
        self.data = home / "data"
        self.data.mkdir()
        env = isolated_env(home)
        env["PYTHONPATH"] = str(Path(src).resolve())
        self.daemon = Daemon(data_dir=self.data, env=env, concurrency=10, port=port)
        self.daemon.start()
        self.env = {**env, "PROVISIONING_ORCHESTRATOR_ENDPOINT": self.daemon.url}
        self.env["PROVISIONING_STORAGE_DATA_DIR"] = str(self.data)
        self.workflow = home / "workflow.json"

    def run(self, workflow: dict[str, Any]) -> dict[str, float]:
        self.workflow.write_text(json.dumps(workflow))
        hub = supervisor_of(self.data)
        hub_before = cpu_seconds(hub) if hub else 0.0
        daemon_before = cpu_seconds(self.daemon.pid)
        argv = [str(CLI), "workflow", "submit", str(self.workflow), "--wait", "--json"]
        done = subprocess.run(argv, env=self.env, capture_output=True, text=True, check=True)
        record = json.loads(done.stdout)
        assert record["status"] == "completed", record["status"]
        created = datetime.fromisoformat(record["created_at"]).timestamp()
        server = datetime.fromisoformat(record["completed_at"]).timestamp() - created
        return {
            "server": server,
            "hub": cpu_seconds(hub) - hub_before if hub else float("nan"),
            "daemon": cpu_seconds(self.daemon.pid) - daemon_before,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--trees", required=True, help="name=src,name=src")
    parser.add_argument("--fan", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--port", type=int, default=9450)
    args = parser.parse_args()
    named = [item.split("=", 1) for item in args.trees.split(",")]
    trees = {name: Tree(name, src, args.port + i) for i, (name, src) in enumerate(named)}
    workflow = workflow_for(layered("fan", [1, args.fan, 1], "true"), 10, fan_in_as_items=True)
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
    try:
        for tree in trees.values():
            tree.run(workflow)  # the supervisor started, the caches warm
        for _ in range(args.repeats):
            for name, tree in trees.items():
                runs[name].append(tree.run(workflow))
    finally:
        for tree in trees.values():
            tree.daemon.stop()
    tasks = args.fan + 2
    for name, got in runs.items():
        server = [round(r["server"], 3) for r in got]
        hub = 1000 * statistics.median(r["hub"] for r in got) / tasks
        daemon = 1000 * statistics.median(r["daemon"] for r in got) / tasks
        print(
            f"{name}: fan {args.fan} server median {statistics.median(server):.3f} s {server}; "
            f"supervisor CPU {hub:.3f} ms/attempt; daemon CPU {daemon:.3f} ms/attempt"
        )


if __name__ == "__main__":
    main()
