"""Prometheus metrics of this orchestrator process (the official ``prometheus-client``).

Counters and histograms are fed by a few calls from the scheduler, the engine, the
liveness loop and the store client; what the store knows (the queue, workflows,
nodes) is read when ``/metrics`` is scraped, so every node of a shared store reports
the same queue.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ..tasks import Priority, TaskStatus, WorkflowStatus
from .models import Step, Task

REGISTRY = CollectorRegistry(auto_describe=True)

# Seconds, from a quick `true` to an hour-long cluster build.
DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)

TASKS_FINISHED = Counter(
    "provisioning_tasks_finished",
    "Tasks that one of their attempts brought to a final status, by outcome and runner "
    "(a task cancelled before it ran is counted in provisioning_tasks only)",
    ["outcome", "runner"],
    registry=REGISTRY,
)
TASK_RETRIES = Counter(
    "provisioning_task_retries",
    "Failed attempts that were scheduled to be tried again",
    ["runner"],
    registry=REGISTRY,
)
TASK_DURATION = Histogram(
    "provisioning_task_duration_seconds",
    "From a task's first start to its final status",
    ["outcome", "runner"],
    buckets=DURATION_BUCKETS,
    registry=REGISTRY,
)
STEP_DURATION = Histogram(
    "provisioning_step_duration_seconds",
    "From the first start of a workflow step's tasks to the end of the step",
    ["kind", "status"],
    buckets=DURATION_BUCKETS,
    registry=REGISTRY,
)
CLAIM_TO_START = Histogram(
    "provisioning_claim_to_start_seconds",
    "From claiming a task to its handler process running",
    ["runner"],
    buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)
STORE_COMMIT = Histogram(
    "provisioning_store_commit_seconds",
    "One round of the store worker: the verbs queued meanwhile, in one commit",
    buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)
LEASES_LOST = Counter(
    "provisioning_leases_lost",
    "Running attempts taken over by this node after their node stopped renewing its lease",
    registry=REGISTRY,
)


def runner_of(task: Task) -> str:
    try:
        return task.run_spec.kind
    except ValueError:  # a row of an older schema: count it, under no runner
        return "unknown"


def task_finished(task: Task) -> None:
    """A task reached a final status (called once per task, by the node that ended it)."""
    runner = runner_of(task)
    TASKS_FINISHED.labels(outcome=task.status.value, runner=runner).inc()
    if task.started_at is not None and task.completed_at is not None:
        TASK_DURATION.labels(outcome=task.status.value, runner=runner).observe(
            max(task.completed_at - task.started_at, 0.0)
        )


def task_retrying(task: Task) -> None:
    TASK_RETRIES.labels(runner=runner_of(task)).inc()


def task_spawned(task: Task, seconds_since_claim: float) -> None:
    CLAIM_TO_START.labels(runner=runner_of(task)).observe(max(seconds_since_claim, 0.0))


def store_round(seconds: float) -> None:
    STORE_COMMIT.observe(seconds)


def leases_lost(count: int) -> None:
    if count:
        LEASES_LOST.inc(count)


def steps_finished(steps: Iterable[Step], tasks: Iterable[Task]) -> None:
    """Observe the duration of each finished step of a workflow that just finished."""
    first_start: dict[str, float] = {}
    for task in tasks:
        if task.step_id is not None and task.started_at is not None:
            known = first_start.get(task.step_id)
            first_start[task.step_id] = min(known or task.started_at, task.started_at)
    for step in steps:
        start = first_start.get(step.step_id)
        if step.finished_at is not None and start is not None:
            STEP_DURATION.labels(kind=step.kind, status=step.status).observe(
                max(step.finished_at - start, 0.0)
            )


@dataclass(frozen=True)
class StoreSnapshot:
    """What the store says at scrape time."""

    tasks_by_status: Mapping[str, int]
    queued_by_priority: Mapping[str, int]
    workflows_by_status: Mapping[str, int]
    nodes_alive: int
    nodes_registered: int
    shared_store: bool
    running_here: int
    max_concurrent: int
    backend: str = "unknown"


class _SnapshotCollector(Collector):
    def __init__(self, snapshot: StoreSnapshot) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        snap = self._snapshot
        queued = GaugeMetricFamily(
            "provisioning_tasks_queued",
            "Tasks waiting to run (pending), by priority",
            labels=["priority"],
        )
        for priority in Priority:
            queued.add_metric([priority.label], snap.queued_by_priority.get(priority.label, 0))
        yield queued
        yield GaugeMetricFamily(
            "provisioning_tasks_running",
            "Tasks running on any node of the store",
            value=snap.tasks_by_status.get(TaskStatus.RUNNING.value, 0),
        )
        by_status = GaugeMetricFamily(
            "provisioning_tasks", "Tasks in the store, by status", labels=["status"]
        )
        for status in TaskStatus:
            by_status.add_metric([status.value], snap.tasks_by_status.get(status.value, 0))
        yield by_status
        workflows = GaugeMetricFamily(
            "provisioning_workflows", "Workflows in the store, by status", labels=["status"]
        )
        for wf_status in WorkflowStatus:
            count = snap.workflows_by_status.get(wf_status.value, 0)
            workflows.add_metric([wf_status.value], count)
        yield workflows
        yield GaugeMetricFamily(
            "provisioning_node_tasks_running",
            "Tasks running on this node",
            value=snap.running_here,
        )
        yield GaugeMetricFamily(
            "provisioning_node_max_concurrent_tasks",
            "executor.max_concurrent_tasks of this node",
            value=snap.max_concurrent,
        )
        yield GaugeMetricFamily(
            "provisioning_nodes_alive",
            "Nodes of the store that renewed their heartbeat within one lease",
            value=snap.nodes_alive,
        )
        yield GaugeMetricFamily(
            "provisioning_nodes_registered",
            "Nodes registered in the store, alive or not",
            value=snap.nodes_registered,
        )
        shared = GaugeMetricFamily(
            "provisioning_store_shared",
            "1 when several nodes may share the store (PostgreSQL, SurrealDB server)",
            labels=["backend"],
        )
        shared.add_metric([snap.backend], 1 if snap.shared_store else 0)
        yield shared


def exposition(snapshot: StoreSnapshot) -> bytes:
    """The text format: this process's counters and histograms, then the snapshot."""
    scrape = CollectorRegistry(auto_describe=False)
    scrape.register(_SnapshotCollector(snapshot))
    return generate_latest(REGISTRY) + generate_latest(scrape)
