"""What reading the original's KCL costs next to Nickel, and what ``migrate kcl`` takes.

One run on this machine: the fixture KCL workspace (tests/fixtures/kcl_workspace)
copied to a temporary folder; each loader's time is its best of 3 (every load is a
fresh bounded worker process, as the CLI and the daemon run it).

    .venv/bin/python bench/bench_kcl.py
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from provisioning.kclmigrate import migrate
from provisioning.schemas import load_workflow_file
from provisioning.schemas.kcl import evaluate_kcl

FIXTURE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "kcl_workspace"


def best_of(runs: int, action: Callable[[], Any]) -> float:
    best = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        action()
        best = min(best, time.perf_counter() - started)
    return best


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="bench-kcl-") as folder:
        workspace = Path(folder) / "ws"
        shutil.copytree(FIXTURE, workspace)
        batch = workspace / "workflows" / "multi-cloud-deployment.k"
        kcl = best_of(3, lambda: evaluate_kcl(batch, notice=False))
        dry = best_of(1, lambda: migrate(workspace, write=False))
        write = best_of(1, lambda: migrate(workspace, write=True))
        nickel = best_of(3, lambda: load_workflow_file(batch.with_suffix(".ncl")))
        again = best_of(1, lambda: migrate(workspace, write=True))
        files = len(list(workspace.rglob("*.k")))
    report = {
        "kcl_load_s": round(kcl, 3),
        "nickel_load_s": round(nickel, 3),
        "migrate_files": files,
        "migrate_dry_run_s": round(dry, 2),
        "migrate_write_s": round(write, 2),
        "migrate_again_s": round(again, 2),
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
