"""``/metrics`` of the real daemon, parsed by ``prometheus_client.parser``."""

from __future__ import annotations

from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.acceptance.conftest import Daemon
from tests.acceptance.test_multinode import LEASE_SECONDS, Node
from tests.acceptance.workflow_helpers import run_and_wait
from tests.conftest import wait_for
from tests.integration.pg_server import (  # noqa: F401 - fixtures
    _stop_postgres_at_the_end,
    pg_dsn,
    pg_server,
)

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(daemon: Daemon) -> Samples:
    response = daemon.http.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def total(samples: Samples, name: str) -> float:
    return sum(v for (n, _), v in samples.items() if n == name)


def test_metrics_need_the_token(daemon: Daemon) -> None:
    assert httpx.get(daemon.url + "/metrics").status_code == 401
    bad = httpx.get(daemon.url + "/metrics", headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 401
    assert "provisioning_tasks_queued" in daemon.http.get("/metrics").text


def test_public_metrics_answer_without_the_token(make_daemon: object) -> None:
    daemon: Daemon = make_daemon()  # type: ignore[operator]
    daemon.config.write_text(daemon.config.read_text() + "[metrics]\npublic = true\n")
    daemon.start()
    response = httpx.get(daemon.url + "/metrics")
    assert response.status_code == 200
    assert "provisioning_nodes_alive 1.0" in response.text
    # The rest of the API still wants the token.
    assert httpx.get(daemon.url + "/tasks").status_code == 401


def test_values_move_when_tasks_run(daemon: Daemon) -> None:
    before = scrape(daemon)
    assert value(before, "provisioning_nodes_alive") == 1
    assert value(before, "provisioning_store_shared", backend="sqlite") == 0

    ok = daemon.submit({"command": ["true"]})
    bad = daemon.submit(
        {"command": ["sh", "-c", "exit 4"]}, retry={"max_attempts": 2, "initial_delay": 0}
    )
    daemon.wait_status(ok)
    daemon.wait_status(bad)
    found = run_and_wait(
        daemon,
        {
            "name": "measured",
            "operations": [
                {"id": "a", "run": {"command": ["true"]}},
                {"id": "b", "depends_on": ["a"], "run": {"command": ["true"]}},
            ],
        },
    )
    assert found["status"] == "completed"

    def moved() -> Samples | None:
        # Step durations are observed just after the workflow's last event.
        after = scrape(daemon)
        steps = "provisioning_step_duration_seconds_count"
        return after if value(after, steps, kind="run", status="completed") >= 2 else None

    after = wait_for(moved, timeout=20, message="step durations observed")
    finished = "provisioning_tasks_finished_total"
    assert (
        value(after, finished, outcome="completed", runner="command")
        - value(before, finished, outcome="completed", runner="command")
        == 3
    )
    assert (
        value(after, finished, outcome="failed", runner="command")
        - value(before, finished, outcome="failed", runner="command")
        == 1
    )
    retries = "provisioning_task_retries_total"
    assert value(after, retries, runner="command") - value(before, retries, runner="command") == 1
    claim = "provisioning_claim_to_start_seconds_count"
    assert value(after, claim, runner="command") - value(before, claim, runner="command") == 5
    durations = "provisioning_task_duration_seconds_count"
    assert value(after, durations, outcome="completed", runner="command") >= 3
    commits = "provisioning_store_commit_seconds_count"
    assert value(after, commits) > value(before, commits)
    assert value(after, "provisioning_workflows", status="completed") == 1
    assert value(after, "provisioning_tasks", status="completed") == 3
    assert value(after, "provisioning_tasks", status="failed") == 1
    assert value(after, "provisioning_tasks_running") == 0
    assert value(after, "provisioning_leases_lost_total") == 0


def test_queue_by_priority_and_running(make_daemon: object) -> None:
    daemon: Daemon = make_daemon(max_concurrent_tasks=1)  # type: ignore[operator]
    daemon.start()
    blocker = daemon.submit({"command": ["sleep", "60"]}, name="blocker")
    daemon.wait_status(blocker, {"running"})
    queued = [
        daemon.submit({"command": ["true"]}, priority=priority)
        for priority in ("high", "high", "low", "critical")
    ]
    samples = scrape(daemon)
    assert value(samples, "provisioning_tasks_running") == 1
    assert value(samples, "provisioning_node_tasks_running") == 1
    assert value(samples, "provisioning_tasks_queued", priority="high") == 2
    assert value(samples, "provisioning_tasks_queued", priority="low") == 1
    assert value(samples, "provisioning_tasks_queued", priority="critical") == 1
    assert value(samples, "provisioning_tasks_queued", priority="normal") == 0
    assert total(samples, "provisioning_tasks_queued") == 4

    daemon.http.post(f"/tasks/{blocker}/cancel")
    for task_id in queued:
        daemon.wait_status(task_id)
    samples = scrape(daemon)
    assert total(samples, "provisioning_tasks_queued") == 0
    assert (
        value(samples, "provisioning_tasks_finished_total", outcome="cancelled", runner="command")
        == 1
    )


def test_leases_lost_and_nodes_alive_on_a_shared_store(tmp_path: Path, pg_dsn) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    dsn = pg_dsn()
    token_file = tmp_path / "cluster-token"
    marker = tmp_path / "ran-once"
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    first = Node(tmp_path / "a", dsn, token_file, lease_seconds=LEASE_SECONDS)
    second = Node(tmp_path / "b", dsn, token_file, lease_seconds=LEASE_SECONDS)
    try:
        first.start()
        # Runs long the first time (on the node that dies), briefly when retried.
        script = f'[ -e "{marker}" ] && exit 0; touch "{marker}"; sleep 60'
        task_id = first.submit(
            {"command": ["sh", "-c", script]}, retry={"max_attempts": 3, "initial_delay": 0}
        )
        first.wait_status(task_id, {"running"})
        second.start()
        samples = scrape(second)
        assert value(samples, "provisioning_nodes_alive") == 2
        assert value(samples, "provisioning_store_shared", backend="postgres") == 1
        assert value(samples, "provisioning_tasks_running") == 1
        assert value(samples, "provisioning_node_tasks_running") == 0

        first.kill9()
        second.wait_status(task_id, {"completed"}, timeout=60)
        samples = scrape(second)
        assert value(samples, "provisioning_leases_lost_total") == 1
        assert value(samples, "provisioning_nodes_alive") == 1
        assert value(samples, "provisioning_nodes_registered") == 2
    finally:
        for node in (first, second):
            if node.proc is not None and node.proc.poll() is None:
                node.stop()
