"""``/health`` latency of one daemon under abuse (issue 15, point 4): a task printing
2,000,000 lines, and 900 slow clients that never finish their headers.

    .venv/bin/python bench/bench_abuse.py [--lines N] [--slow-clients K]

Writes ``bench/results/abuse.json``; prints p50/p99/max of ``GET /health`` probed
every 20 ms during each phase, and the database size after the chatty task.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_queue import Daemon, isolated_env, machine_info, summarize_ms


def probe(daemon: Daemon, until: Any) -> list[float]:
    samples = []
    with httpx.Client(timeout=30) as client:
        while not until():
            started = time.monotonic()
            assert client.get(daemon.url + "/health").status_code == 200
            samples.append(time.monotonic() - started)
            time.sleep(0.02)
    return samples


def chatty(daemon: Daemon, lines: int) -> dict[str, Any]:
    with httpx.Client(base_url=daemon.url, headers=daemon.headers, timeout=30) as api:
        task_id = api.post(
            "/tasks", json={"name": "chatty", "run": {"command": ["seq", "1", str(lines)]}}
        ).json()["task_id"]
        started = time.monotonic()

        def done() -> bool:
            return api.get(f"/tasks/{task_id}").json()["status"] in ("completed", "failed")

        samples = probe(daemon, done)
        elapsed = time.monotonic() - started
        size = api.get("/status").json()["storage"].get("size_bytes")
    return {
        "lines": lines,
        "task_seconds": round(elapsed, 2),
        "db_bytes": size,
        "health": summarize_ms(samples),
    }


def slow_clients(daemon: Daemon, count: int, hold: float) -> dict[str, Any]:
    held = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", daemon.port))
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        held.append(sock)
    deadline = time.monotonic() + hold
    try:
        samples = probe(daemon, lambda: time.monotonic() > deadline)
    finally:
        for sock in held:
            sock.close()
    return {"slow_clients": count, "health": summarize_ms(samples)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=2_000_000)
    parser.add_argument("--slow-clients", type=int, default=900)
    parser.add_argument("--output", default=str(Path(__file__).parent / "results" / "abuse.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-abuse-") as tmp:
        root = Path(tmp)
        daemon = Daemon(root / "data", isolated_env(root / "home"), 4)
        daemon.start()
        try:
            report = {
                "when": datetime.now().isoformat(timespec="seconds"),
                "machine": machine_info(),
                "chatty_task": chatty(daemon, args.lines),
                "slow_clients": slow_clients(daemon, args.slow_clients, hold=5.0),
            }
        finally:
            daemon.stop()
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k != "machine"}, indent=2))


if __name__ == "__main__":
    main()
