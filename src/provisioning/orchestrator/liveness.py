"""Node liveness: heartbeats, lease takeover, self-fencing, and orphan recovery.

A running attempt is held under a lease that its node renews with every
heartbeat. When a node dies, its leases run out and any other node settles the
attempt (recorded *lost*, retried per the task's policy). A node that cannot
renew its leases stops its own tasks before they expire, so that the node
taking them over never runs a task while the old execution still lives.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time

from ..config import Settings
from ..execution.follow import Found
from ..execution.process import StopReason, ensure_dead
from ..execution.procfs import boot_id
from ..execution.runners import ATTEMPT_MARKER
from ..tasks import AttemptStatus, Outcome
from . import metrics
from .models import Attempt, Claim, Task
from .scheduler import Scheduler, attempt_key
from .store import StoreError
from .storeclient import StoreClient

log = logging.getLogger("provisioning.orchestrator.liveness")

# Stop our own tasks when this much of the lease passed without a renewal.
SELF_FENCE_FRACTION = 0.75


async def _stored_lines(store: StoreClient, task_id: str, attempt: int) -> int:
    """How many log lines of the attempt the store has (its replay skips them)."""
    count, after = 0, 0
    while True:
        page = await store.run(store.store.logs, task_id, after=after, limit=1000)
        if not page:
            return count
        count += sum(1 for line in page if line.attempt == attempt)
        after = page[-1].seq


async def settle_orphans(
    scheduler: Scheduler,
    store: StoreClient,
    orphans: list[tuple[Task, Attempt]],
    reason: str,
    *,
    adopt_running: bool = False,
) -> int:
    """Settle each orphaned attempt. One that ended while no daemon watched is recorded
    from the status its supervisor saved, and with ``adopt_running`` one that still runs
    here is supervised on (neither is run again). What is left of any other is killed;
    once it is gone the attempt is recorded lost (fenced: an attempt is not settled
    twice), which does not use up a try."""
    loop = asyncio.get_running_loop()
    here = boot_id()
    settled = 0
    for task, attempt in orphans:
        key = attempt_key(task.id, attempt.number)
        local = attempt.process is None or attempt.process.boot_id == here
        found = scheduler.supervisors.found(key) if local else Found.GONE
        if found is Found.FINISHED or (found is Found.ALIVE and adopt_running):
            lines = await _stored_lines(store, task.id, attempt.number)
            scheduler.adopt(Claim(task, attempt.number), lines)
            log.warning("re-adopted attempt %d of task %s (%s)", attempt.number, task.id, found)
            settled += 1
            continue
        killed: list[int] = []
        if local:
            marker = (ATTEMPT_MARKER, f"{task.id}/{attempt.number}")
            cgroup = scheduler.sandbox.cgroup_of(key)
            end = functools.partial(ensure_dead, attempt.process, marker, cgroup=cgroup)
            killed = await loop.run_in_executor(None, end)
        detail = f"; killed what was left of it ({len(killed)} process(es)/group(s))"
        outcome = Outcome(AttemptStatus.LOST, error=reason + (detail if killed else ""))
        if await scheduler.finish_attempt(task, attempt.number, outcome) is not None:
            settled += 1
            log.warning("settled orphaned attempt %d of task %s", attempt.number, task.id)
        scheduler.supervisors.forget(key)
    return settled


class Liveness:
    """The heartbeat loop of one node."""

    def __init__(
        self,
        store: StoreClient,
        scheduler: Scheduler,
        settings: Settings,
        node_id: str,
        *,
        beat: StoreClient | None = None,
    ) -> None:
        self._store = store
        # The renewals' own store thread and connection where the store offers one: a
        # renewal never waits behind a batch of this node's other verbs (a workflow of a
        # million edges being stored takes seconds).
        self._beat = beat or store
        self._scheduler = scheduler
        self._lease = settings.executor.lease_seconds
        self._max = settings.executor.max_concurrent_tasks
        self.node_id = node_id
        self._loop_task: asyncio.Task[None] | None = None
        self._watch_task: asyncio.Task[None] | None = None
        self._last_renewal = time.monotonic()

    @property
    def shared(self) -> bool:
        return self._store.store.shared

    async def start(self, host: str, pid: int) -> None:
        await self._store.run(
            self._store.store.register_node,
            self.node_id,
            host=host,
            pid=pid,
            max_concurrent=self._max,
            now=time.time(),
        )
        if self.shared:
            await self.take_over_expired()
            # This node's earlier life had another id: its attempts were (or will be)
            # taken over, and their supervisors fence themselves. Forget what they left.
            self._scheduler.supervisors.sweep(set())
            self._scheduler.supervisors.drop_other_leases()
        else:
            # One node at a time on this store: whatever still runs is from a previous life.
            orphans = await self._store.run(self._store.store.running_attempts)
            await settle_orphans(
                self._scheduler,
                self._store,
                orphans,
                "the orchestrator stopped while this attempt ran",
                adopt_running=True,
            )
            keep = {attempt_key(task.id, attempt.number) for task, attempt in orphans}
            self._scheduler.supervisors.sweep(keep)
        self._last_renewal = time.monotonic()
        # Claims start after this, so their leases run from later than it.
        self._scheduler.supervisors.renewed(self._last_renewal)
        self._loop_task = asyncio.create_task(self._run(), name="heartbeat")
        self._watch_task = asyncio.create_task(self._watch(), name="lease-watch")

    async def stop(self) -> None:
        for loop_task in (self._loop_task, self._watch_task):
            if loop_task is not None:
                loop_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await loop_task
        try:
            await self._store.run(self._store.store.deregister_node, self.node_id)
        except StoreError as exc:
            log.warning("could not deregister node %s (%s)", self.node_id, exc)
        except Exception:
            log.exception("could not deregister node %s", self.node_id)

    async def take_over_expired(self) -> int:
        expired = await self._store.run(self._store.store.expired_leases, now=time.time())
        mine = [pair for pair in expired if pair[1].node_id != self.node_id]
        if not mine:
            return 0
        settled = await settle_orphans(
            self._scheduler,
            self._store,
            mine,
            f"its node stopped renewing its lease; taken over by {self.node_id}",
        )
        metrics.leases_lost(settled)
        return settled

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._lease / 3)
            # The lease runs from when the renewal was asked for, not from its answer.
            asked_at = time.monotonic()
            try:
                # Its own deadline: a renewal stuck behind a dead socket must still
                # let this node fence itself in time.
                cancels = await self._beat.run_within(
                    self._lease / 3,
                    self._beat.store.heartbeat,
                    self.node_id,
                    now=time.time(),
                    lease_seconds=self._lease,
                    held=self._scheduler.held,
                )
            except StoreError as exc:
                log.warning("heartbeat failed (%s)", exc)
                self._fence_if_late()
                continue
            except Exception:
                log.exception("heartbeat failed")
                self._fence_if_late()
                continue
            self._last_renewal = asked_at
            # Only now: the lease file tells this node's supervisors the store has
            # renewed their attempts' leases, and from when.
            self._scheduler.supervisors.renewed(asked_at)
            if self._scheduler.claims_paused:
                log.warning("leases renewed again: claiming work again")
                self._scheduler.claims_paused = False
                self._scheduler.wake()
            for task_id in cancels:
                self._scheduler.cancel_local(task_id)
            if self.shared:
                try:
                    await self.take_over_expired()
                except Exception:
                    log.exception("lease takeover failed")

    async def _watch(self) -> None:
        """Check the lease's age often, apart from the heartbeat: a renewal that hangs
        (a link gone silent) must not delay the self-stop past 0.75 x lease."""
        while True:
            await asyncio.sleep(self._lease / 12)
            self._fence_if_late()

    def _fence_if_late(self) -> None:
        late = time.monotonic() - self._last_renewal
        if late <= self._lease * SELF_FENCE_FRACTION or self._scheduler.claims_paused:
            return
        running = self._scheduler.running_count
        log.error(
            "no lease renewal for %.1fs: claiming nothing until one succeeds; stopping %d "
            "running task(s) before another node takes them over",
            late,
            running,
        )
        # What it claimed now could not be held either.
        self._scheduler.claims_paused = True
        if running:
            self._scheduler.stop_all(StopReason.SHUTDOWN)
