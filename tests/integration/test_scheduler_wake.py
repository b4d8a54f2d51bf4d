"""A recorded finish wakes the claim loop: the finish may have released dependents that a
claim queued just before it (woken by another task's end) could not see, and on a store
without notifications nothing else would look for them until the idle poll, a second
later (it stalled layered workflows by a second per layer, now and then)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from provisioning.config import Settings
from provisioning.orchestrator.events import EventBus
from provisioning.orchestrator.scheduler import Scheduler
from provisioning.orchestrator.store import open_sqlite
from provisioning.orchestrator.storeclient import StoreClient
from provisioning.tasks import AttemptStatus, Outcome, TaskStatus
from tests.conformance.test_queue import T0, claim_one, enqueue


def test_a_recorded_finish_wakes_the_claim_loop(tmp_path: Path) -> None:
    store = open_sqlite(tmp_path / "orchestrator.db")
    task = enqueue(store, "one", now=T0)
    claim = claim_one(store, now=T0 + 1)

    async def scenario() -> tuple[bool, bool, TaskStatus | None]:
        client = StoreClient(store)
        try:
            scheduler = Scheduler(
                client,
                Settings(),
                EventBus(),
                node_id="node-a",
                endpoint="http://127.0.0.1:1",
                task_token=lambda _: "token",
            )
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
