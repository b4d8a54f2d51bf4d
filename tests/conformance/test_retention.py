"""Retention (``storage.retention_days``): ``purge_finished`` deletes finished tasks with
their attempts and logs once older than the cut-off, and nothing else."""

from __future__ import annotations

from typing import Any

from provisioning.orchestrator.store import Store
from provisioning.tasks import AttemptStatus, Outcome, TaskStatus
from tests.conformance.test_queue import T0, claim_one, enqueue, must_get


def purge(store: Store, before: float) -> dict[str, int]:
    return store.purge_finished(before=before)


def finished_task(store: Store, name: str, at: float) -> Any:
    task = enqueue(store, name, now=at - 5)
    claim = claim_one(store, now=at - 4)
    assert claim.task.id == task.id
    store.append_logs(task.id, claim.attempt, [("stdout", f"{name} says hi", at - 3)])
    assert store.finish(
        task.id, claim.attempt, Outcome(AttemptStatus.COMPLETED, exit_code=0), now=at
    )
    return task


def test_finished_tasks_older_than_the_cutoff_go_with_their_logs(store: Store) -> None:
    old = finished_task(store, "old", T0 + 10)
    new = finished_task(store, "new", T0 + 100)
    waiting = enqueue(store, "waiting", now=T0)
    removed = purge(store, before=T0 + 50)
    assert removed["tasks"] == 1
    assert removed["task_logs"] == 1
    assert store.get(old.id) is None
    assert store.logs(old.id) == []
    assert store.attempts(old.id) == []
    assert must_get(store, new.id).status is TaskStatus.COMPLETED
    assert [line.line for line in store.logs(new.id)] == ["new says hi"]
    assert must_get(store, waiting.id).status is TaskStatus.PENDING


def test_nothing_younger_than_the_cutoff_and_nothing_running_is_purged(store: Store) -> None:
    finished = finished_task(store, "done", T0 + 10)
    running = enqueue(store, "running", now=T0)
    claim_one(store, now=T0 + 11)
    assert purge(store, before=T0 + 5) == {key: 0 for key in purge(store, before=T0 + 5)}
    assert must_get(store, finished.id).status is TaskStatus.COMPLETED
    purge(store, before=T0 + 10_000)
    assert store.get(finished.id) is None
    assert must_get(store, running.id).status is TaskStatus.RUNNING
