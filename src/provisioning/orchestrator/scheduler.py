"""Claims ready tasks by priority within the concurrency limit and runs them.

One scheduler per orchestrator node. It never spawns processes itself (the
executor does) and never speaks SQL (the store does); it decides *when*: what
to claim, when to retry, what to hand back at shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ..config import Settings
from ..execution import ProcessHooks, ProcessInfo, RunnerError, build_invocation
from ..execution.follow import Fence
from ..execution.process import StopReason
from ..execution.runners import ATTEMPT_MARKER
from ..execution.sandbox import Sandbox
from ..execution.supervised import Supervisors
from ..execution.supervisor.frames import lease_file
from ..tasks import AttemptStatus, Outcome
from . import observe
from .events import EventBus
from .models import Claim, Task
from .ratelog import RateLimitedLog
from .store import StoreError
from .storeclient import StoreClient

T = TypeVar("T")

log = logging.getLogger("provisioning.orchestrator.scheduler")

IDLE_POLL_SECONDS = 1.0
RECORD_RETRY_MAX_SECONDS = 2.0
# Attempts of one task that may end without counting (interrupted, lost) before the
# next such one counts as a try.
MAX_GIVEN_BACK = 20
# A supervisor stops its task when its node's lease went this long without a renewal.
SELF_FENCE_FRACTION = 0.75
_dropped = RateLimitedLog(log, "store writes for running tasks dropped (store failing)")
_claims = RateLimitedLog(log, "claiming work failed (store failing)")


async def _tolerated(call: Awaitable[T], task_id: str) -> T | None:
    """A write that may be lost without harm (a log line, progress, the process record:
    recovery also finds processes by their marker) when the store cannot take it."""
    try:
        return await call
    except StoreError as exc:
        _dropped.note(f"task {task_id}: {exc}")
        return None


def attempt_key(task_id: str, attempt: int) -> str:
    """The name of an attempt's cgroup: a restarted node finds it from the store."""
    return f"{task_id}.{attempt}"


def task_summary(task: Task) -> dict[str, object]:
    """The fields of a task that events carry."""
    return {
        "task_id": task.id,
        "name": task.name,
        "status": task.status.value,
        "progress": task.progress,
        "attempt": task.attempt,
        "workflow_id": task.workflow_id,
        "error": task.error,
    }


@dataclass
class _Running:
    claim: Claim
    stop: asyncio.Future[StopReason]
    job: asyncio.Task[None] | None = None
    process: ProcessInfo | None = field(default=None)
    # The writes its hooks queued (process record, progress, logs), in order: queued
    # before the outcome, so they land first without the outcome waiting for them.
    writes: list[asyncio.Future[Any]] = field(default_factory=list)
    # Set for an attempt a previous daemon started: how many of its log lines the
    # store has already (its supervisor's saved output is replayed after them).
    adopted_lines: int | None = None
    claimed_at: float = field(default_factory=time.monotonic)
    # How its attempt began in the claim loop: the request handed to the supervisor
    # (and the connection it went on), or the outcome when it could not start.
    begun: Outcome | _Handed | None = None


@dataclass(frozen=True)
class _Handed:
    request: dict[str, Any]
    connection: socket.socket | None


class Scheduler:
    """The claim/execute loop of one node."""

    def __init__(
        self,
        store: StoreClient,
        settings: Settings,
        bus: EventBus,
        *,
        node_id: str,
        endpoint: str,
        task_token: Callable[[str], str],
        on_finished: Callable[[Task], Awaitable[None]] | None = None,
    ) -> None:
        self._store = store
        self._settings = settings
        self._bus = bus
        self.node_id = node_id
        self._endpoint = endpoint
        self._task_token = task_token
        self._on_finished = on_finished
        self._running: dict[str, _Running] = {}
        # Set by the heartbeat while this node cannot renew its leases.
        self.claims_paused = False
        self._wake = asyncio.Event()
        # The store queue's number of the last claim queued (see finish_attempt).
        self._claim_queued = 0
        self._stopping = False
        self._loops: list[asyncio.Task[None]] = []
        self._retry_times: list[float] = []
        self._finishing: set[asyncio.Future[Task | None]] = set()
        self.sandbox = Sandbox.from_settings(settings)
        fence = None
        if store.store.shared:
            lease = settings.executor.lease_seconds
            fence = Fence(lease_file(settings.data_dir, node_id), lease * SELF_FENCE_FRACTION)
        self.supervisors = Supervisors(settings.data_dir, fence)

    @property
    def running_count(self) -> int:
        return len(self._running)

    @property
    def held(self) -> frozenset[str]:
        """The tasks whose processes this node supervises now (their leases it renews)."""
        return frozenset(self._running)

    def wake(self) -> None:
        self._wake.set()

    @property
    def wake_pending(self) -> bool:
        """The claim loop will look for work again before it sleeps."""
        return self._wake.is_set()

    def start(self) -> None:
        self.supervisors.start()
        self._loops = [
            asyncio.create_task(self._claim_loop(), name="claim-loop"),
        ]
        if self._store.store.shared:
            # A shared store tells idle nodes at once when another node queued work
            # (PostgreSQL LISTEN/NOTIFY); the idle poll stays as the fallback.
            loop = asyncio.get_running_loop()
            threading.Thread(
                target=self._listen,
                args=(self._store.store.wait_for_work, loop),
                name="listen",
                daemon=True,
            ).start()

    def _listen(self, waiter: Callable[[float], bool], loop: asyncio.AbstractEventLoop) -> None:
        while not self._stopping:
            try:
                notified = waiter(IDLE_POLL_SECONDS)
            except Exception:
                log.exception("waiting for notifications failed; polling only")
                return
            if notified and not self._stopping:
                loop.call_soon_threadsafe(self.wake)

    def usage(self, task_id: str) -> dict[str, float | int | None] | None:
        """CPU and memory of a task running here, read from its cgroup (``None``: not
        running here, or no cgroup)."""
        running = self._running.get(task_id)
        if running is None:
            return None
        group = self.sandbox.cgroup_of(attempt_key(task_id, running.claim.attempt))
        return group.usage().as_dict() if group is not None else None

    def cancel_local(self, task_id: str) -> bool:
        """Stop a task running on this node at once; ``False`` if it is not here."""
        running = self._running.get(task_id)
        if running is None:
            return False
        if not running.stop.done():
            running.stop.set_result(StopReason.CANCEL)
        return True

    def stop_all(self, reason: StopReason) -> None:
        """Stop every task running here (their attempts end, per ``reason``)."""
        for running in list(self._running.values()):
            if not running.stop.done():
                running.stop.set_result(reason)

    async def stop(self, grace: float) -> None:
        """Claim nothing more; await running tasks up to ``grace`` seconds, then hand
        the rest back to the queue (their attempts do not count)."""
        self._stopping = True
        self._wake.set()
        for loop in self._loops:
            loop.cancel()
        for loop in self._loops:
            with contextlib.suppress(asyncio.CancelledError):
                await loop
        jobs: list[asyncio.Future[Any]] = [
            r.job for r in self._running.values() if r.job is not None
        ]
        jobs += self._finishing  # ended processes whose outcome is being recorded
        if jobs:
            log.info("waiting up to %gs for %d running task(s)", grace, len(jobs))
            _, pending = await asyncio.wait(jobs, timeout=grace)
            if pending:
                log.info("handing %d task(s) back to the queue", len(pending))
                self.stop_all(StopReason.SHUTDOWN)
                await asyncio.wait(pending)
        self.supervisors.close()

    # -- loops --------------------------------------------------------------------------

    async def _claim_loop(self) -> None:
        limit = self._settings.executor.max_concurrent_tasks
        lease = self._settings.executor.lease_seconds
        while not self._stopping:
            self._wake.clear()
            free = 0 if self.claims_paused else limit - len(self._running)
            claims: list[Claim] = []
            if free > 0:
                try:
                    self._claim_queued = self._store.queued + 1
                    claims = await self._store.run(
                        self._store.store.claim,
                        self.node_id,
                        free,
                        now=time.time(),
                        lease_seconds=lease,
                    )
                except StoreError as exc:
                    _claims.note(exc)
                except Exception:
                    log.exception("claim failed; retrying shortly")
            for claim in claims:
                self._launch(claim)
            if free > 0 and len(claims) == free:
                continue  # There may be more ready work than slots we had.
            await self._sleep_until_work()

    async def _sleep_until_work(self) -> None:
        # Retries this node scheduled wake it on time; anything else (another node's
        # retries, a clock jump) is found by the idle poll.
        timeout = IDLE_POLL_SECONDS
        if self._retry_times:
            now = time.time()
            while self._retry_times and self._retry_times[0] <= now - IDLE_POLL_SECONDS:
                heapq.heappop(self._retry_times)
            if self._retry_times:
                timeout = min(timeout, max(self._retry_times[0] - now, 0.0))
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout)

    # -- one attempt --------------------------------------------------------------------

    def adopt(self, claim: Claim, stored_lines: int) -> None:
        """Go on supervising an attempt a previous daemon started on this machine (still
        running, or ended with its status saved): it keeps its attempt and its try."""
        self._launch(claim, adopted_lines=stored_lines)

    def _launch(self, claim: Claim, adopted_lines: int | None = None) -> None:
        stop: asyncio.Future[StopReason] = asyncio.get_running_loop().create_future()
        running = _Running(claim=claim, stop=stop, adopted_lines=adopted_lines)
        self._running[claim.task.id] = running
        if adopted_lines is None:
            # Before any of this loop's other work: the handler starts meanwhile.
            running.begun = self._begin(running)
            self._bus.publish("task", "started", task_summary(claim.task))
        running.job = asyncio.create_task(self._execute(running), name=f"task-{claim.task.id}")

    async def _execute(self, running: _Running) -> None:
        claim = running.claim
        task = claim.task
        try:
            outcome = await self._run_attempt(running)
        except Exception as exc:  # A bug of ours must not leave the task running forever.
            log.exception("attempt %s/%d crashed", task.id, claim.attempt)
            outcome = Outcome(AttemptStatus.FAILED, error=f"orchestrator error: {exc}")
        # The process is gone, so its slot is free: the claim that refills it queues
        # behind this finish in the store (one commit for both, usually) instead of
        # waiting for the finish's answer first.
        finishing = asyncio.ensure_future(self._record_end(task, claim.attempt, outcome))
        self._finishing.add(finishing)
        finishing.add_done_callback(self._finishing.discard)
        self._running.pop(task.id, None)
        self._wake.set()
        await finishing
        await asyncio.gather(*running.writes)

    async def _run_attempt(self, running: _Running) -> Outcome:
        task, attempt = running.claim.task, running.claim.attempt
        if running.adopted_lines is not None:
            hooks = self._hooks(running, running.claimed_at)
            adopted = await self.supervisors.adopt(
                attempt_key(task.id, attempt),
                hooks=hooks,
                stop=running.stop,
                log_keep_bytes=self._log_keep_bytes,
                stored_lines=running.adopted_lines,
            )
            if adopted is None:
                # Not the task's fault: its try is given back (see finish_attempt).
                return Outcome(
                    AttemptStatus.LOST, error="its supervisor died with the orchestrator"
                )
            return adopted
        begun = running.begun
        if isinstance(begun, Outcome):
            return begun
        assert begun is not None  # _launch begins every attempt it does not adopt
        return await self.supervisors.run(
            begun.request,
            hooks=self._hooks(running, running.claimed_at),
            stop=running.stop,
            log_keep_bytes=self._log_keep_bytes,
            handed=begun.connection,
        )

    def _begin(self, running: _Running) -> Outcome | _Handed:
        try:
            begun = self._request(running)
        except Exception as exc:  # A bug of ours must not leave the task running forever.
            log.exception("attempt %s/%d crashed", running.claim.task.id, running.claim.attempt)
            return Outcome(AttemptStatus.FAILED, error=f"orchestrator error: {exc}")
        if isinstance(begun, Outcome):
            return begun
        return _Handed(begun, self.supervisors.hand_over(begun))

    def _request(self, running: _Running) -> Outcome | dict[str, Any]:
        """What the supervisor is asked to run; an outcome when there is nothing to."""
        task, attempt = running.claim.task, running.claim.attempt
        if task.cancel_requested:
            return Outcome(AttemptStatus.CANCELLED, error="cancelled")
        task_env = {
            "PROVISIONING_TASK_ID": task.id,
            "PROVISIONING_WORKFLOW_ID": task.workflow_id or "",
            "PROVISIONING_ORCHESTRATOR_URL": self._endpoint,
            "PROVISIONING_TASK_TOKEN": self._task_token(task.id),
            ATTEMPT_MARKER: f"{task.id}/{attempt}",
            **observe.attempt_started(task, attempt),
        }
        try:
            run = task.run_spec
            invocation = build_invocation(
                run,
                task.params,
                self._settings,
                task_env=task_env,
                base_env=self.sandbox.environment(run),
            )
        except RunnerError as exc:
            return Outcome(AttemptStatus.FAILED, error=str(exc), permanent=True)

        key = attempt_key(task.id, attempt)
        request = self.supervisors.request(
            key,
            invocation.argv,
            env=invocation.env,
            cwd=self.sandbox.cwd,
            timeout=task.timeout_seconds,
            kill_grace=self._settings.executor.kill_grace_seconds,
            confine=self.sandbox.confinement(key, run),
            file_bytes=2 * self._log_keep_bytes + (1 << 20),
        )
        return request

    @property
    def _log_keep_bytes(self) -> int:
        return int(self._settings.executor.log_keep_mib * 1024 * 1024)

    def _hooks(self, running: _Running, claimed_at: float) -> ProcessHooks:
        task, attempt = running.claim.task, running.claim.attempt
        verbs = self._store.store

        def write(
            call: Awaitable[T], then: Callable[[T | None], None] | None = None
        ) -> asyncio.Future[None]:
            async def answered() -> None:
                done = await _tolerated(call, task.id)
                if then is not None:
                    then(done)

            future = asyncio.ensure_future(answered())
            running.writes.append(future)
            return future

        def on_spawn(info: ProcessInfo) -> None:
            # Not awaited: the store's queue runs it before this attempt's finish, and
            # a crash before it commits is covered by the environment marker.
            running.process = info
            observe.attempt_spawned(task, claimed_at)
            write(self._store.queue(verbs.record_process, task.id, attempt, info))

        def on_progress(progress: int, message: str | None) -> Awaitable[None]:
            def published(updated: Task | None) -> None:
                if updated is not None:
                    summary = {**task_summary(updated), "message": message}
                    self._bus.publish("task", "progress", summary)

            queued = self._store.queue(
                verbs.record_progress, task.id, progress, message, attempt=attempt
            )
            return write(queued, published)

        def on_logs(lines: list[tuple[str, str, float]]) -> Awaitable[None]:
            def published(_: object) -> None:
                tail = [line for _, line, _ in lines[-50:]]
                self._bus.publish("task", "log", {"task_id": task.id, "lines": tail})

            return write(self._store.queue(verbs.append_logs, task.id, attempt, lines), published)

        return ProcessHooks(
            on_spawn=on_spawn, on_progress=on_progress, on_logs=on_logs, queued_in_order=True
        )

    async def _record_end(self, task: Task, attempt: int, outcome: Outcome) -> Task | None:
        """:meth:`finish_attempt`, tried again while the store cannot take the write (a
        full disk): the outcome lands once there is room. At shutdown it gives up; the
        attempt's supervisor kept its status, which the next start records."""
        delay = 0.1
        while True:
            try:
                updated = await self.finish_attempt(task, attempt, outcome)
            except StoreError as exc:
                if self._stopping:
                    log.error("outcome of %s/%d not recorded (%s)", task.id, attempt, exc)
                    return None
                log.warning(
                    "recording the outcome of %s/%d failed (%s); retrying", task.id, attempt, exc
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, RECORD_RETRY_MAX_SECONDS)
                continue
            # Recorded, or fenced (another settled it): the saved status is not needed.
            self.supervisors.forget_soon(attempt_key(task.id, attempt))
            return updated

    async def finish_attempt(self, task: Task, attempt: int, outcome: Outcome) -> Task | None:
        """Record how an attempt ended and decide on a retry (also used by recovery)."""
        now = time.time()
        retry_at: float | None = None
        # Interrupted (shutdown, a lost lease) or lost (the orchestrator or its machine
        # died under it): not the task's fault, so its try is given back. But a task
        # that keeps taking its node down with it (memory, a kernel bug) would come back
        # forever: past MAX_GIVEN_BACK such attempts, each one counts.
        given_back = task.attempt - task.tries
        counts = (
            outcome.status not in (AttemptStatus.INTERRUPTED, AttemptStatus.LOST)
            or given_back >= MAX_GIVEN_BACK
        )
        retryable = not outcome.permanent and outcome.status in (
            AttemptStatus.FAILED,
            AttemptStatus.TIMED_OUT,
            AttemptStatus.LOST,
            AttemptStatus.INTERRUPTED,
        )
        tries_used = task.tries
        if not counts:
            retry_at = now
        elif retryable and tries_used < task.retry.max_attempts:
            retry_at = now + task.retry.delay_before(tries_used + 1)
        finish_queued = self._store.queued + 1
        updated: Task | None = await self._store.run(
            self._store.store.finish,
            task.id,
            attempt,
            outcome,
            now=now,
            retry_at=retry_at,
            counts=counts,
        )
        if updated is None:
            log.warning("attempt %s/%d was taken over; its outcome is dropped", task.id, attempt)
            return None
        # This finish may have released dependents, and a claim queued before it (woken
        # by another task's end) could not see them: claim again, unless a claim queued
        # after it did (the usual case: its task's end woke the claim loop).
        if self._claim_queued < finish_queued:
            self._wake.set()
        if retry_at is not None:
            heapq.heappush(self._retry_times, retry_at)
        name = "retrying" if retry_at is not None and counts else "finished"
        if not counts:
            name = "requeued"
        self._bus.publish("task", name, {**task_summary(updated), "retry_at": retry_at})
        observe.attempt_finished(task, attempt, outcome, updated, retrying=name == "retrying")
        if updated.status.terminal and self._on_finished is not None:
            await self._on_finished(updated)
        return updated
