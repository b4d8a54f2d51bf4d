"""Crash windows: a node dies at the worst moments; what a new handle on the same
database must find, and how recovery moves on from there (explicit expected states)."""

from __future__ import annotations

import pytest

from provisioning.execution import ProcessInfo
from provisioning.orchestrator.store import Store
from provisioning.tasks import AttemptStatus, NewTask, Outcome, RetryPolicy, TaskStatus
from tests.conformance.conftest import Backend
from tests.conformance.workflow_helpers import LEASE, T0, Driver, Op, create, state

RETRY = RetryPolicy(max_attempts=3)


def reopen(backend: Backend, dead: Store) -> Store:
    """The node holding ``dead`` is gone (its handle closed, nothing more said); a new
    node opens the same database."""
    if not backend.shared:
        pytest.skip("a second handle does not see this backend's database")
    backend.close(dead)
    return backend.open()


def enqueue(store: Store, name: str = "job") -> str:
    task = store.enqueue(
        NewTask.model_validate({"name": name, "run": {"command": ["true"]}}),
        default_timeout=60,
        default_retry=RETRY,
        now=T0,
    )
    return task.id


def test_killed_between_claim_and_start(backend: Backend) -> None:
    first = backend.open()
    task_id = enqueue(first)
    [claim] = first.claim("node-a", 1, now=T0 + 1, lease_seconds=LEASE)
    second = reopen(backend, first)
    [(task, attempt)] = second.running_attempts()
    assert (task.id, task.status, task.attempt, task.owner) == (
        task_id,
        TaskStatus.RUNNING,
        1,
        "node-a",
    )
    assert (attempt.number, attempt.status, attempt.process) == (1, AttemptStatus.RUNNING, None)
    assert second.expired_leases(now=T0 + 1 + LEASE - 1) == []
    assert [t.id for t, _ in second.expired_leases(now=T0 + 2 + LEASE)] == [task_id]
    # Recovery: the attempt is lost, not the task's fault.
    lost = Outcome(AttemptStatus.LOST, error="node died")
    back = second.finish(task_id, 1, lost, now=T0 + 40, retry_at=T0 + 40, counts=False)
    assert back is not None
    assert (back.status, back.tries, back.owner, back.run_after) == (
        TaskStatus.PENDING,
        0,
        None,
        T0 + 40,
    )
    [again] = second.claim("node-b", 1, now=T0 + 41, lease_seconds=LEASE)
    assert (again.task.id, again.attempt, again.task.tries) == (task_id, 2, 1)
    # A late answer from the lost attempt changes nothing.
    done = Outcome(AttemptStatus.COMPLETED, exit_code=0)
    assert second.finish(task_id, claim.attempt, done, now=T0 + 42) is None
    assert [(a.number, a.status) for a in second.attempts(task_id)] == [
        (1, AttemptStatus.LOST),
        (2, AttemptStatus.RUNNING),
    ]


def test_killed_between_the_exit_and_its_record(backend: Backend) -> None:
    first = backend.open()
    task_id = enqueue(first)
    first.claim("node-a", 1, now=T0 + 1, lease_seconds=LEASE)
    process = ProcessInfo(pid=4242, pgid=4242, start_ticks=77, boot_id="boot-1")
    first.record_process(task_id, 1, process)
    first.append_logs(task_id, 1, [("stdout", "done", T0 + 2)])
    second = reopen(backend, first)
    # The handler exited but its end was never recorded: still running, its group known.
    [(task, attempt)] = second.running_attempts(owner="node-a")
    assert (task.status, attempt.process) == (TaskStatus.RUNNING, process)
    assert [line.line for line in second.logs(task_id)] == ["done"]
    interrupted = Outcome(AttemptStatus.INTERRUPTED, error="orchestrator died")
    back = second.finish(task_id, 1, interrupted, now=T0 + 3, retry_at=T0 + 3, counts=False)
    assert back is not None and (back.status, back.tries, back.error) == (
        TaskStatus.PENDING,
        0,
        "orchestrator died",
    )
    assert second.running_attempts() == []


def test_a_recorded_finish_survives_the_kill_and_released_its_dependents(
    backend: Backend,
) -> None:
    first = backend.open()
    wf = create(first, {"a": Op(), "b": Op(("a",))})
    run = Driver(first)
    assert run.run() == ["a"]
    second = reopen(backend, first)
    assert state(second, wf.id)["tasks"] == {"a": "completed", "b": "pending"}
    claims = second.claim("node-b", 10, now=T0 + 10, lease_seconds=LEASE)
    assert [c.task.name for c in claims] == ["b"]  # a completed task never runs again


def test_a_workflow_task_lost_for_good_fails_its_workflow_and_retry_resumes(
    backend: Backend,
) -> None:
    first = backend.open()
    wf = create(first, {"a": Op(), "b": Op(("a",))})
    [claim] = first.claim("node-a", 1, now=T0 + 1, lease_seconds=LEASE)
    second = reopen(backend, first)
    lost = Outcome(AttemptStatus.LOST, error="node died")
    ended = second.finish(claim.task.id, claim.attempt, lost, now=T0 + 40)
    assert ended is not None and ended.workflow_status is not None
    assert state(second, wf.id)["tasks"] == {"a": "failed", "b": "skipped"}
    assert state(second, wf.id)["status"] == "failed"
    resumed = second.reset_workflow(wf.id, now=T0 + 50)
    assert resumed is not None and resumed.status.value == "running"
    assert state(second, wf.id)["tasks"] == {"a": "pending", "b": "blocked"}


def test_an_expired_lease_is_found_by_another_node_not_its_own(backend: Backend) -> None:
    if not backend.shared:
        pytest.skip("a second handle does not see this backend's database")
    node_a, node_b = backend.open(), backend.open()
    mine, theirs = enqueue(node_a, "a-task"), enqueue(node_a, "b-task")
    node_a.claim("node-a", 1, now=T0 + 1, lease_seconds=LEASE)
    node_b.claim("node-b", 1, now=T0 + 1, lease_seconds=LEASE)
    assert node_b.heartbeat("node-b", now=T0 + LEASE, lease_seconds=LEASE) == set()
    expired = node_b.expired_leases(now=T0 + LEASE + 5)
    assert [(t.id, t.owner) for t, _ in expired] == [(mine, "node-a")]
    assert theirs not in {t.id for t, _ in expired}
