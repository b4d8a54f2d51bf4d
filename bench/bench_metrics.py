"""What a Prometheus scrape costs (issue 13): ``GET /metrics`` latency against the size
of the queue, beside ``GET /status``.

    .venv/bin/python bench/bench_metrics.py [--quick] [--sizes 0,1000,10000]

For each size a fresh daemon (``--max-concurrent-tasks 1``) gets one task that sleeps
and ``size`` pending tasks behind it (queued through the store before it starts, as
``POST /tasks`` would), so the queue stays put while it is scraped. ``/metrics``
counts the queue by priority with one grouped query (``pending_by_priority``).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench_queue import Daemon, isolated_env, machine_info, summarize_ms

BLOCKER = {"run": {"command": ["sleep", "3600"]}, "priority": "critical"}
PENDING = {"run": {"command": ["true"]}}
PRIORITIES = ("low", "normal", "high")


def preload(data_dir: Path, env: dict[str, str], count: int) -> None:
    from provisioning.config import load_config
    from provisioning.orchestrator.store import open_store
    from provisioning.tasks import NewTask, RetryPolicy

    settings = load_config(
        flags={"storage.data_dir": str(data_dir)}, environ=env, cwd=data_dir
    ).settings
    store = open_store(settings)
    defaults: dict[str, Any] = {
        "default_timeout": settings.executor.task_timeout_seconds,
        "default_retry": RetryPolicy(),
    }
    try:
        store.enqueue(
            NewTask.model_validate({"name": "blocker", **BLOCKER}), now=time.time(), **defaults
        )
        for i in range(count):
            body = {"name": f"queued-{i}", **PENDING, "priority": PRIORITIES[i % 3]}
            store.enqueue(NewTask.model_validate(body), now=time.time() + 1, **defaults)
    finally:
        store.close()


def timed(client: httpx.Client, path: str, rounds: int) -> list[float]:
    times = []
    for _ in range(rounds):
        began = time.perf_counter()
        response = client.get(path)
        times.append(time.perf_counter() - began)
        if response.status_code != 200:
            raise RuntimeError(f"GET {path}: {response.status_code} {response.text[:200]}")
    return times


def measure(size: int, rounds: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-metrics-") as tmp:
        home = Path(tmp)
        data_dir = home / "data"
        data_dir.mkdir()
        env = isolated_env(home)
        preload(data_dir, env, size)
        daemon = Daemon(data_dir=data_dir, env=env, concurrency=1)
        try:
            daemon.start()
            with httpx.Client(base_url=daemon.url, headers=daemon.headers, timeout=60) as client:
                timed(client, "/metrics", 2)  # warm up
                scrape = client.get("/metrics").text
                queued = sum(
                    float(line.rsplit(" ", 1)[1])
                    for line in scrape.splitlines()
                    if line.startswith("provisioning_tasks_queued{")
                )
                return {
                    "queued": size,
                    "queued_reported": queued,
                    "metrics": summarize_ms(timed(client, "/metrics", rounds)),
                    "status": summarize_ms(timed(client, "/status", rounds)),
                    "metrics_bytes": len(scrape),
                }
        finally:
            daemon.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="sizes 0 and 1000, 10 rounds")
    parser.add_argument("--sizes", default="0,1000,10000")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--output", default="bench/results/metrics.json")
    args = parser.parse_args()
    sizes = [0, 1000] if args.quick else [int(s) for s in args.sizes.split(",")]
    rounds = 10 if args.quick else args.rounds
    results = [measure(size, rounds) for size in sizes]
    print("| queued tasks | /metrics p50 | p90 | max | /status p50 | scrape size |")
    print("|---:|---:|---:|---:|---:|---:|")
    for row in results:
        m, s = row["metrics"], row["status"]
        print(
            f"| {row['queued']:,} | {m['p50_ms']} ms | {m['p90_ms']} ms | {m['max_ms']} ms "
            f"| {s['p50_ms']} ms | {row['metrics_bytes']:,} B |"
        )
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(
        json.dumps({"machine": machine_info(), "rounds": rounds, "results": results}, indent=2)
    )


if __name__ == "__main__":
    main()
