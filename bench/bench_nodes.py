"""Scale-out benchmark (issue 6): 2,000 short ``command`` tasks on one PostgreSQL
queue served by 1, 2 and 3 orchestrator nodes on this machine, and the claim latency
(submit -> running) p50/p99 of PostgreSQL against SQLite.

    .venv/bin/python bench/bench_nodes.py [--quick]

Needs Debian's postgresql server binaries (a throwaway server is started on a free
loopback port and removed at the end).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from bench_queue import Daemon, isolated_env, machine_info, percentile, report_head, save_results

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.integration.pg_server import PostgresServer, find_bindir  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
TASK = {"run": {"command": ["true"]}}


@contextlib.contextmanager
def cluster(count: int, env: dict[str, str], concurrency: int) -> Iterator[list[Daemon]]:
    with tempfile.TemporaryDirectory(prefix="bench-nodes-") as tmp:
        nodes = []
        try:
            for index in range(count):
                data_dir = Path(tmp) / f"node{index}"
                data_dir.mkdir()
                node = Daemon(data_dir=data_dir, env=env, concurrency=concurrency)
                node.start()
                nodes.append(node)
            yield nodes
        finally:
            for node in nodes:
                node.stop()


def _epoch(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


async def _all_tasks(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    offset = 0
    while True:
        page = (await client.get("/tasks", params={"limit": 1000, "offset": offset})).json()
        found += page["tasks"]
        offset += len(page["tasks"])
        if offset >= page["total"] or not page["tasks"]:
            return found


async def _throughput(nodes: list[Daemon], count: int) -> dict[str, Any]:
    headers = nodes[0].headers
    async with httpx.AsyncClient(base_url=nodes[0].url, headers=headers, timeout=60) as client:
        # Submitted from 8 connections spread over the nodes, as clients would.
        clients = [httpx.AsyncClient(base_url=n.url, headers=headers, timeout=60) for n in nodes]
        try:
            queue = list(range(count))

            async def submitter(index: int) -> None:
                target = clients[index % len(clients)]
                while queue:
                    number = queue.pop()
                    response = await target.post("/tasks", json={"name": f"t{number}", **TASK})
                    response.raise_for_status()

            await asyncio.gather(*(submitter(i) for i in range(8)))
        finally:
            for extra in clients:
                await extra.aclose()
        deadline = time.monotonic() + 300
        while True:
            counts = (await client.get("/status")).json()["tasks"]
            if counts["completed"] + counts["failed"] >= count:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(counts)
            await asyncio.sleep(0.05)  # the benchmark's polling interval
        tasks = await _all_tasks(client)
    created = min(_epoch(t["created_at"]) for t in tasks)
    done = max(_epoch(t["completed_at"]) for t in tasks)
    per_node: dict[str, int] = {}
    for task in tasks[:200]:
        detail = (await _detail(nodes[0], task["id"]))["attempts"][-1]["node_id"]
        per_node[detail] = per_node.get(detail, 0) + 1
    return {
        "tasks": count,
        "wall_s": round(done - created, 3),
        "tasks_per_s": round(count / (done - created), 1),
        "failed": sum(1 for t in tasks if t["status"] != "completed"),
        "sample_spread_over_nodes": sorted(per_node.values(), reverse=True),
    }


async def _detail(node: Daemon, task_id: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=node.url, headers=node.headers) as client:
        result: dict[str, Any] = (await client.get(f"/tasks/{task_id}")).json()
        return result


async def _claim_latency(node: Daemon, rate: float, seconds: float) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=node.url, headers=node.headers, timeout=30) as client:
        start = time.monotonic()
        sent = 0
        total = int(rate * seconds)
        while sent < total:
            wait = start + sent / rate - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)  # open-loop pacing of the submissions
            response = await client.post("/tasks", json={"name": f"l{sent}", **TASK})
            response.raise_for_status()
            sent += 1
        deadline = time.monotonic() + 60
        while (await client.get("/status")).json()["tasks"]["completed"] < total:
            if time.monotonic() > deadline:
                raise TimeoutError("tasks did not finish")
            await asyncio.sleep(0.05)  # the benchmark's polling interval
        tasks = await _all_tasks(client)
    waits = [
        1000 * (_epoch(t["started_at"]) - _epoch(t["created_at"])) for t in tasks if t["started_at"]
    ]
    return {
        "tasks": len(waits),
        "p50_ms": round(percentile(waits, 50), 2),
        "p99_ms": round(percentile(waits, 99), 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--output", type=Path, default=RESULTS / "nodes.json")
    args = parser.parse_args(argv)
    count = 300 if args.quick else 2000
    rate, seconds = (50.0, 2.0) if args.quick else (50.0, 10.0)
    if find_bindir() is None:
        print("bench_nodes: needs PostgreSQL server binaries (apt-get install postgresql)")
        return 2
    server = PostgresServer(find_bindir() or Path())
    server.start()
    home = Path(tempfile.mkdtemp(prefix="bench-nodes-home-"))
    results: dict[str, Any] = {
        "when": datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": "python bench/bench_nodes.py" + (" --quick" if args.quick else ""),
        "machine": machine_info(),
        "throughput": [],
    }
    try:
        for nodes in (1, 2, 3):
            env = isolated_env(home)
            env["PROVISIONING_STORAGE_BACKEND"] = "postgres"
            env["PROVISIONING_STORAGE_DSN"] = server.new_database()
            env["PROVISIONING_SERVER_TOKEN_FILE"] = str(home / f"token-{nodes}")
            with cluster(nodes, env, 10) as members:
                row = asyncio.run(_throughput(members, count))
            results["throughput"].append({"nodes": nodes, **row})
            print(f"{nodes} node(s): {row}", flush=True)
        latency: dict[str, Any] = {}
        for backend in ("sqlite", "postgres"):
            env = isolated_env(home)
            env["PROVISIONING_SERVER_TOKEN_FILE"] = str(home / f"token-{backend}")
            if backend == "postgres":
                env["PROVISIONING_STORAGE_BACKEND"] = "postgres"
                env["PROVISIONING_STORAGE_DSN"] = server.new_database()
            with cluster(1, env, 10) as members:
                latency[backend] = asyncio.run(_claim_latency(members[0], rate, seconds))
            print(f"claim latency {backend}: {latency[backend]}", flush=True)
        results["claim_latency"] = latency
    finally:
        server.stop()
    save_results(results, args.output)
    print(render(results))
    return 0


def render(res: dict[str, Any]) -> str:
    lines = [
        *report_head("## Nodes benchmark", res),
        "| nodes | tasks | wall | tasks/s | sample of 200: tasks per node |",
        "|---|---|---|---|---|",
    ]
    for row in res["throughput"]:
        lines.append(
            f"| {row['nodes']} | {row['tasks']} | {row['wall_s']} s | {row['tasks_per_s']} | "
            f"{row['sample_spread_over_nodes']} |"
        )
    lines += ["", "| store | claim latency p50 | p99 |", "|---|---|---|"]
    for backend, row in res["claim_latency"].items():
        lines.append(f"| {backend} | {row['p50_ms']} ms | {row['p99_ms']} ms |")
    return "\n".join(lines)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
