"""A store outage is survived (issue 15, items 1-2): PostgreSQL stopped for two leases
in the middle of a workflow. While it is down the API answers 503 "store unavailable"
with Retry-After and /health says degraded; the node stops its own tasks before its
leases run out and claims nothing; when the server is back everything resumes without
restarting anything, and no two runs of one task ever overlapped."""

from __future__ import annotations

import itertools
import time
from pathlib import Path

from psycopg.conninfo import make_conninfo

from tests.acceptance.stalling_proxy import StallingProxy
from tests.acceptance.test_multinode import Node
from tests.acceptance.workflow_helpers import item_layers, submit, wait_workflow, workflow
from tests.conftest import wait_for
from tests.integration.pg_server import (  # noqa: F401 - fixtures
    PostgresServer,
    _stop_postgres_at_the_end,
    pg_dsn,
    pg_server,
)

LEASE_SECONDS = 3.0
CALL_TIMEOUT_SECONDS = 2.0
CUT_OFF_LEASE_SECONDS = 8.0


def node_with_deadline(
    root: Path, dsn: str, token: Path, lease_seconds: float = LEASE_SECONDS
) -> Node:
    root.mkdir()
    node = Node(root, dsn, token, max_concurrent_tasks=4, lease_seconds=lease_seconds)
    text = node.config.read_text().replace(
        "[storage]\n", f"[storage]\ncall_timeout_seconds = {CALL_TIMEOUT_SECONDS}\n", 1
    )
    node.config.write_text(text)
    return node


def recorded(records: Path) -> str:
    """A task's script that records each run's start and end (also when stopped)."""
    return (
        f'r="{records}/$PROVISIONING_TASK_ID"; echo "start $$ $(date +%s.%N)" >> "$r"; '
        # A second TERM (the group and its leader are both signalled) must not cut
        # the record short.
        f'trap \'trap "" TERM; echo "end $$ $(date +%s.%N)" >> "$r"; exit 143\' TERM; '
        f'sleep 12 & wait $!; echo "end $$ $(date +%s.%N)" >> "$r"'
    )


def runs_of(record: Path) -> list[tuple[float, float]]:
    """(start, end) of each run a task's record file shows; an unfinished run ends never."""
    runs: list[tuple[float, float]] = []
    begun: dict[str, float] = {}
    for line in record.read_text().splitlines():
        what, pid, when = line.split()
        if what == "start":
            begun[pid] = float(when)
        elif pid in begun:  # only the first end of a run counts
            runs.append((begun.pop(pid), float(when)))
    runs += [(start, float("inf")) for start in begun.values()]
    return sorted(runs)


def test_postgres_stopped_for_two_leases_mid_workflow(  # type: ignore[no-untyped-def]
    tmp_path: Path,
    pg_server: PostgresServer,  # noqa: F811
    pg_dsn,  # noqa: F811
) -> None:
    node = node_with_deadline(tmp_path / "node", pg_dsn(), tmp_path / "token")
    records = tmp_path / "runs"
    records.mkdir()
    script = (
        f'r="{records}/$PROVISIONING_TASK_ID"; echo "start $$ $(date +%s.%N)" >> "$r"; '
        f'sleep 0.4; echo "end $$ $(date +%s.%N)" >> "$r"'
    )
    body = workflow(
        "through-an-outage",
        *item_layers(2, 16, ["sh", "-c", script]),
        parallel_limit=4,
        retry={"max_attempts": 6, "initial_delay": 0},
    )
    halted = False
    try:
        node.start()
        workflow_id = submit(node, body)

        def completed() -> int:
            return int(node.http.get(f"/workflows/{workflow_id}").json()["tasks"]["completed"])

        wait_for(lambda: completed() >= 4, timeout=60, message="4 tasks completed")
        pg_server.halt()
        halted = True
        outage_began = time.monotonic()

        health = wait_for(
            lambda: (h := node.http.get("/health").json())["status"] == "degraded" and h,
            timeout=4 * LEASE_SECONDS,
            message="/health says degraded",
        )
        assert health["store"].startswith("unavailable: "), health
        refused = node.http.get("/status")
        assert refused.status_code == 503, refused.text
        assert refused.json()["error"].startswith("store unavailable")
        assert refused.headers["Retry-After"]
        new_task = node.http.post("/tasks", json={"name": "x", "run": {"command": ["true"]}})
        assert new_task.status_code == 503, new_task.text
        # The outage lasts two leases (the fault's length, not a wait for a condition).
        time.sleep(max(0.0, 2 * LEASE_SECONDS - (time.monotonic() - outage_began)))
        pg_server.resume()
        halted = False

        final = wait_workflow(node, workflow_id, timeout=120)
        assert final["status"] == "completed", final.get("error")
        wait_for(
            lambda: node.http.get("/health").json()["status"] == "healthy",
            timeout=4 * LEASE_SECONDS,
            message="/health healthy again",
        )
        tasks = [t for step in final["steps"] for t in step["tasks"]]
        assert len(tasks) == 32 and {t["status"] for t in tasks} == {"completed"}
        for task in tasks:
            runs = runs_of(records / task["id"])
            assert runs, task
            for (_, end), (start, _) in itertools.pairwise(runs):
                assert end <= start, (task["id"], runs)  # never two live runs at once
        assert node.proc is not None and node.proc.poll() is None  # nothing was restarted
    finally:
        if halted:
            pg_server.resume()
        if node.proc is not None and node.proc.poll() is None:
            node.stop()


def test_a_node_cut_off_from_postgres_stops_its_own_tasks_before_a_takeover(  # type: ignore[no-untyped-def]
    tmp_path: Path,
    pg_server: PostgresServer,  # noqa: F811
    pg_dsn,  # noqa: F811
) -> None:
    dsn = pg_dsn()
    token = tmp_path / "token"
    records = tmp_path / "runs"
    records.mkdir()
    body = workflow(
        "cut-off",
        *item_layers(1, 4, ["sh", "-c", recorded(records)]),
        retry={"max_attempts": 3, "initial_delay": 0},
    )
    with StallingProxy((pg_server.host, pg_server.port)).running() as proxy:
        cut_off = node_with_deadline(
            tmp_path / "a", make_conninfo(dsn, port=str(proxy.port)), token
        )
        other = node_with_deadline(tmp_path / "b", dsn, token)
        try:
            cut_off.start()
            workflow_id = submit(cut_off, body)
            wait_for(
                lambda: len(list(records.iterdir())) == 4,
                timeout=30,
                message="the 4 tasks started on the node to be cut off",
            )
            other.start()
            proxy.stall()

            final = wait_workflow(other, workflow_id, timeout=90)
            assert final["status"] == "completed", final.get("error")
            log = cut_off.log_path.read_text()
            assert "before another node takes them over" in log, log[-2000:]
            assert "claiming nothing until one succeeds" in log
            health = cut_off.http.get("/health", timeout=5).json()
            assert health["status"] == "degraded", health
            for record in records.iterdir():
                runs = runs_of(record)
                assert len(runs) == 2, (record.name, runs)  # stopped there, run here
                (_, stopped_at), (started_at, _) = runs
                assert stopped_at <= started_at, (record.name, runs)
        finally:
            proxy.resume()
            for node in (cut_off, other):
                if node.proc is not None and node.proc.poll() is None:
                    node.stop()
