"""Rules of the scheduler's own, against a real store.

A recorded finish wakes the claim loop: the finish may have released dependents that a
claim queued just before it (woken by another task's end) could not see, and on a store
without notifications nothing else would look for them until the idle poll, a second
later (it stalled layered workflows by a second per layer, now and then).

An attempt lost with its node gives its try back, but not forever: a task that keeps
taking its node down would otherwise come back without end."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from provisioning.config import Settings
from provisioning.orchestrator.events import EventBus
from provisioning.orchestrator.scheduler import MAX_GIVEN_BACK, Scheduler
from provisioning.orchestrator.store import open_sqlite
from provisioning.orchestrator.storeclient import StoreClient
from provisioning.tasks import AttemptStatus, Outcome, RetryPolicy, TaskStatus
from tests.conformance.test_queue import T0, claim_one, enqueue


def _scheduler(client: StoreClient) -> Scheduler:
    return Scheduler(
        client,
        Settings(),
        EventBus(),
        node_id="node-a",
        endpoint="http://127.0.0.1:1",
        task_token=lambda _: "token",
    )


def test_a_recorded_finish_wakes_the_claim_loop(tmp_path: Path) -> None:
    store = open_sqlite(tmp_path / "orchestrator.db")
    task = enqueue(store, "one", now=T0)
    claim = claim_one(store, now=T0 + 1)

    async def scenario() -> tuple[bool, bool, TaskStatus | None]:
        client = StoreClient(store)
        try:
            scheduler = _scheduler(client)
            before = scheduler.wake_pending
            updated = await scheduler.finish_attempt(
                claim.task, claim.attempt, Outcome(AttemptStatus.COMPLETED, exit_code=0)
            )
            return before, scheduler.wake_pending, updated.status if updated else None
        finally:
            client.close()

    before, after, status = asyncio.run(scenario())
    assert (before, after, status) == (False, True, TaskStatus.COMPLETED)
    assert task.id == claim.task.id


def test_lost_attempts_give_their_try_back_up_to_a_limit(tmp_path: Path) -> None:
    store = open_sqlite(tmp_path / "orchestrator.db")
    # finish_attempt stamps the retry with the clock: the claims follow the clock too.
    start = time.time()
    enqueue(store, "crashes-its-node", now=start, retry=RetryPolicy(max_attempts=1))
    lost = Outcome(AttemptStatus.LOST, error="the orchestrator stopped while this attempt ran")

    async def lose_every_attempt() -> list[tuple[int, int, TaskStatus]]:
        client = StoreClient(store)
        seen = []
        try:
            scheduler = _scheduler(client)
            for _ in range(MAX_GIVEN_BACK + 1):
                claim = claim_one(store, now=time.time() + 1)
                updated = await scheduler.finish_attempt(claim.task, claim.attempt, lost)
                assert updated is not None
                seen.append((updated.attempt, updated.tries, updated.status))
        finally:
            client.close()
        return seen

    seen = asyncio.run(lose_every_attempt())
    given_back = [(n, 0, TaskStatus.PENDING) for n in range(1, MAX_GIVEN_BACK + 1)]
    assert seen == [*given_back, (MAX_GIVEN_BACK + 1, 1, TaskStatus.FAILED)]
