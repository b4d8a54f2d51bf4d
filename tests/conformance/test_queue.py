"""The Store conformance suite: every backend must pass every test here.

The tests speak only the :class:`~provisioning.orchestrator.store.base.Store`
verbs and pass explicit times (``now``), so they need no clock and no sleeps.
Backends come from the parametrised ``store``/``backend`` fixtures in conftest.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

import pytest

from provisioning.execution import ProcessInfo
from provisioning.orchestrator.models import Claim, Task
from provisioning.orchestrator.store import Store
from provisioning.tasks import (
    AttemptStatus,
    NewTask,
    Outcome,
    Priority,
    RetryPolicy,
    RunSpec,
    TaskStatus,
)
from tests.conformance.conftest import Backend

T0 = 1_700_000_000.0
LEASE = 30.0
DEFAULT_TIMEOUT = 600.0
DEFAULT_RETRY = RetryPolicy(max_attempts=4, backoff="linear", initial_delay=7, max_delay=70)
NODE_A = "node-a"
NODE_B = "node-b"

TERMINAL_FOR = [
    (AttemptStatus.COMPLETED, TaskStatus.COMPLETED),
    (AttemptStatus.FAILED, TaskStatus.FAILED),
    (AttemptStatus.CANCELLED, TaskStatus.CANCELLED),
    (AttemptStatus.TIMED_OUT, TaskStatus.TIMED_OUT),
    (AttemptStatus.INTERRUPTED, TaskStatus.FAILED),
    (AttemptStatus.LOST, TaskStatus.FAILED),
]


def new_task(name: str = "task", priority: str = "normal", **fields: Any) -> NewTask:
    return NewTask.model_validate(
        {"name": name, "run": {"command": ["true"]}, "priority": priority, **fields}
    )


def enqueue(
    store: Store,
    name: str = "task",
    priority: str = "normal",
    *,
    now: float = T0,
    workflow_id: str | None = None,
    **fields: Any,
) -> Task:
    return store.enqueue(
        new_task(name, priority, **fields),
        default_timeout=DEFAULT_TIMEOUT,
        default_retry=DEFAULT_RETRY,
        now=now,
        workflow_id=workflow_id,
    )


def claim_one(store: Store, node: str = NODE_A, *, now: float = T0) -> Claim:
    claims = store.claim(node, 1, now=now, lease_seconds=LEASE)
    assert len(claims) == 1, claims
    return claims[0]


def must_get(store: Store, task_id: str) -> Task:
    task = store.get(task_id)
    assert task is not None
    return task


def failed(error: str = "boom", exit_code: int = 1) -> Outcome:
    return Outcome(AttemptStatus.FAILED, exit_code=exit_code, error=error)


def names(claims: Iterable[Claim]) -> list[str]:
    return [claim.task.name for claim in claims]


def run_to_retry(store: Store, *, retry_at: float) -> tuple[Task, Claim]:
    """Enqueue a task, run attempt 1, fail it with a retry, run attempt 2."""
    task = enqueue(store, "flaky")
    first = claim_one(store, now=T0)
    assert store.finish(task.id, first.attempt, failed(), now=T0 + 1, retry_at=retry_at)
    second = claim_one(store, now=retry_at)
    assert second.attempt == 2
    return task, second


class TestStoreConformance:
    # -- schema -------------------------------------------------------------------------

    def test_migrate_is_idempotent_and_reports_the_schema_version(self, store: Store) -> None:
        task = enqueue(store)
        version = store.migrate()
        assert version >= 1
        assert store.migrate() == version
        assert store.meta()["schema_version"] == version
        assert must_get(store, task.id) == task

    def test_meta_names_the_backend(self, store: Store, backend: Backend) -> None:
        expected = {
            "sqlite": "sqlite",
            "sqlite-memory": "sqlite",
            "postgres": "postgres",
            "surreal": "surrealdb",
        }
        assert store.meta()["backend"] == expected[backend.name]

    def test_a_sibling_handle_renews_leases_on_its_own_connection(
        self, store: Store, backend: Backend
    ) -> None:
        # Expected: only the shared backend offers one (its heartbeat's connection).
        offers = {"sqlite": False, "sqlite-memory": False, "postgres": True, "surreal": False}
        sibling = store.sibling()
        assert (sibling is not None) == offers[backend.name]
        if sibling is None:
            return
        try:
            task = enqueue(store)
            claim = claim_one(store, now=T0)
            sibling.heartbeat(NODE_A, now=T0 + 5, lease_seconds=LEASE, held=frozenset({task.id}))
            renewed = must_get(store, task.id)
            assert renewed.lease_expires_at == T0 + 5 + LEASE
            assert claim.attempt == 1
        finally:
            sibling.close()

    def test_schema_version_is_recorded_in_the_database(self, backend: Backend) -> None:
        if not backend.shared:
            pytest.skip("a second handle does not see this backend's database")
        first = backend.open()
        version = first.meta()["schema_version"]
        task = enqueue(first)
        # A second handle must find the recorded version and apply nothing again
        # (re-running the first migration would fail on existing tables or wipe data).
        second = backend.open()
        assert second.migrate() == version
        assert second.meta()["schema_version"] == version
        assert must_get(second, task.id) == task

    # -- enqueue ------------------------------------------------------------------------

    def test_enqueue_returns_a_pending_task_with_defaults(self, store: Store) -> None:
        task = enqueue(store, "hello", params={"name": "ada", "nested": {"n": [1, 2]}})
        assert task.id
        assert task.name == "hello"
        assert task.status is TaskStatus.PENDING
        assert task.run == {"command": ["true"]}
        assert task.run_spec == RunSpec(command=["true"])
        assert task.params == {"name": "ada", "nested": {"n": [1, 2]}}
        assert task.priority is Priority.NORMAL
        assert task.retry == DEFAULT_RETRY
        assert task.timeout_seconds == DEFAULT_TIMEOUT
        assert task.created_at == T0
        assert task.workflow_id is None
        assert (task.attempt, task.tries, task.progress) == (0, 0, 0)
        assert task.progress_message is None
        assert task.result is None
        assert task.error is None
        assert task.started_at is None
        assert task.completed_at is None
        assert task.owner is None
        assert task.lease_expires_at is None
        assert task.cancel_requested is False
        assert task.run_after <= T0
        assert must_get(store, task.id) == task

    def test_enqueue_keeps_the_tasks_own_settings(self, store: Store) -> None:
        retry = RetryPolicy(max_attempts=9, backoff="exponential", initial_delay=1, max_delay=2)
        task = enqueue(
            store,
            "own",
            "critical",
            workflow_id="wf-1",
            timeout_seconds=12.5,
            retry=retry.model_dump(),
            run={"nushell": {"module": "examples/hello.nu", "function": "greet"}},
        )
        assert task.priority is Priority.CRITICAL
        assert task.timeout_seconds == 12.5
        assert task.retry == retry
        assert task.workflow_id == "wf-1"
        assert task.run == {"nushell": {"module": "examples/hello.nu", "function": "greet"}}
        assert must_get(store, task.id) == task

    def test_enqueue_gives_every_task_its_own_id(self, store: Store) -> None:
        ids = {enqueue(store, f"t{i}").id for i in range(20)}
        assert len(ids) == 20

    def test_get_of_an_unknown_task_is_none(self, store: Store) -> None:
        assert store.get("no-such-task") is None

    # -- claim --------------------------------------------------------------------------

    def test_claim_takes_highest_priority_first_then_fifo(self, store: Store) -> None:
        for name, priority in [
            ("low-1", "low"),
            ("high-1", "high"),
            ("normal-1", "normal"),
            ("high-2", "high"),
            ("critical-1", "critical"),
            ("normal-2", "normal"),
            ("low-2", "low"),
        ]:
            enqueue(store, name, priority)
        claims = store.claim(NODE_A, 10, now=T0, lease_seconds=LEASE)
        assert names(claims) == [
            "critical-1",
            "high-1",
            "high-2",
            "normal-1",
            "normal-2",
            "low-1",
            "low-2",
        ]

    def test_claim_one_at_a_time_follows_the_same_order(self, store: Store) -> None:
        for name, priority in [("n1", "normal"), ("l1", "low"), ("h1", "high"), ("n2", "normal")]:
            enqueue(store, name, priority)
        order = [claim_one(store).task.name for _ in range(4)]
        assert order == ["h1", "n1", "n2", "l1"]

    def test_claim_respects_the_limit(self, store: Store) -> None:
        for i in range(5):
            enqueue(store, f"t{i}")
        assert store.claim(NODE_A, 0, now=T0, lease_seconds=LEASE) == []
        assert names(store.claim(NODE_A, 2, now=T0, lease_seconds=LEASE)) == ["t0", "t1"]
        assert store.counts()["pending"] == 3
        assert names(store.claim(NODE_A, 10, now=T0, lease_seconds=LEASE)) == ["t2", "t3", "t4"]
        assert store.claim(NODE_A, 10, now=T0, lease_seconds=LEASE) == []

    def test_claim_of_an_empty_queue_is_empty(self, store: Store) -> None:
        assert store.claim(NODE_A, 5, now=T0, lease_seconds=LEASE) == []

    def test_claim_starts_attempt_one_under_a_lease(self, store: Store) -> None:
        task = enqueue(store)
        claim = claim_one(store, NODE_A, now=T0 + 5)
        assert claim.attempt == 1
        running = claim.task
        assert running.id == task.id
        assert running.status is TaskStatus.RUNNING
        assert running.attempt == 1
        assert running.tries == 1
        assert running.owner == NODE_A
        assert running.lease_expires_at == T0 + 5 + LEASE
        assert running.started_at == T0 + 5
        assert must_get(store, task.id) == running
        [attempt] = store.attempts(task.id)
        assert attempt.task_id == task.id
        assert attempt.number == 1
        assert attempt.node_id == NODE_A
        assert attempt.status is AttemptStatus.RUNNING
        assert attempt.started_at == T0 + 5
        assert attempt.finished_at is None
        assert attempt.exit_code is None
        assert attempt.process is None

    def test_a_running_task_is_not_claimed_again(self, store: Store) -> None:
        enqueue(store)
        claim_one(store, NODE_A)
        assert store.claim(NODE_B, 5, now=T0 + 1000, lease_seconds=LEASE) == []

    def test_a_retry_is_not_claimable_before_its_time(self, store: Store) -> None:
        task = enqueue(store)
        first = claim_one(store, now=T0)
        store.finish(task.id, first.attempt, failed(), now=T0 + 1, retry_at=T0 + 60)
        assert store.claim(NODE_A, 5, now=T0 + 59.5, lease_seconds=LEASE) == []
        assert store.next_ready_at() == T0 + 60
        second = claim_one(store, NODE_B, now=T0 + 60)
        assert second.task.id == task.id
        assert second.attempt == 2
        assert second.task.owner == NODE_B

    def test_a_waiting_retry_does_not_block_ready_tasks(self, store: Store) -> None:
        waiting = enqueue(store, "waiting", "critical")
        first = claim_one(store, now=T0)
        store.finish(waiting.id, first.attempt, failed(), now=T0, retry_at=T0 + 60)
        enqueue(store, "ready", "low")
        assert names(store.claim(NODE_A, 5, now=T0 + 1, lease_seconds=LEASE)) == ["ready"]

    def test_each_retry_is_a_new_attempt(self, store: Store) -> None:
        task, second = run_to_retry(store, retry_at=T0 + 10)
        assert second.task.tries == 2
        assert second.task.started_at == T0  # the task started with its first attempt
        first_attempt, second_attempt = store.attempts(task.id)
        assert (first_attempt.number, first_attempt.status) == (1, AttemptStatus.FAILED)
        assert first_attempt.finished_at == T0 + 1
        assert first_attempt.exit_code == 1
        assert first_attempt.error == "boom"
        assert (second_attempt.number, second_attempt.status) == (2, AttemptStatus.RUNNING)
        assert second_attempt.started_at == T0 + 10

    def test_a_new_attempt_starts_with_fresh_progress(self, store: Store) -> None:
        task = enqueue(store)
        first = claim_one(store)
        store.record_progress(task.id, 70, "most", attempt=first.attempt)
        store.finish(task.id, first.attempt, failed(), now=T0, retry_at=T0)
        second = claim_one(store, now=T0)
        assert second.task.progress == 0
        assert second.task.progress_message is None

    # -- record_process -----------------------------------------------------------------

    def test_record_process_is_kept_on_the_attempt(self, store: Store) -> None:
        task = enqueue(store)
        claim = claim_one(store)
        info = ProcessInfo(pid=4242, pgid=4242, start_ticks=123456, boot_id="boot-1")
        store.record_process(task.id, claim.attempt, info)
        [attempt] = store.attempts(task.id)
        assert attempt.process == info
        [(_, running)] = store.running_attempts(NODE_A)
        assert running.process == info

    # -- heartbeat ----------------------------------------------------------------------

    def test_heartbeat_extends_only_the_nodes_leases(self, store: Store) -> None:
        mine = enqueue(store, "mine")
        theirs = enqueue(store, "theirs")
        claim_one(store, NODE_A, now=T0)
        claim_one(store, NODE_B, now=T0)
        assert store.heartbeat(NODE_A, now=T0 + 20, lease_seconds=LEASE) == set()
        assert must_get(store, mine.id).lease_expires_at == T0 + 20 + LEASE
        assert must_get(store, theirs.id).lease_expires_at == T0 + LEASE

    def test_heartbeat_extends_only_the_leases_it_holds_when_told(self, store: Store) -> None:
        held = enqueue(store, "held")
        gone = enqueue(store, "gone")
        assert names(store.claim(NODE_A, 2, now=T0, lease_seconds=LEASE)) == ["held", "gone"]
        store.request_cancel(gone.id, now=T0 + 1)
        # "gone": its process ended, its outcome not yet recorded: no longer supervised.
        renewed = store.heartbeat(NODE_A, now=T0 + 20, lease_seconds=LEASE, held={held.id})
        assert renewed == set()
        assert must_get(store, held.id).lease_expires_at == T0 + 20 + LEASE
        assert must_get(store, gone.id).lease_expires_at == T0 + LEASE
        assert store.heartbeat(NODE_A, now=T0 + 21, lease_seconds=LEASE, held=set()) == set()
        assert must_get(store, held.id).lease_expires_at == T0 + 20 + LEASE

    def test_heartbeat_reports_the_tasks_asked_to_cancel(self, store: Store) -> None:
        keep = enqueue(store, "keep")
        stop = enqueue(store, "stop")
        other = enqueue(store, "other")
        claims = store.claim(NODE_A, 2, now=T0, lease_seconds=LEASE)
        assert names(claims) == ["keep", "stop"]
        claim_one(store, NODE_B)
        store.request_cancel(stop.id, now=T0 + 1)
        store.request_cancel(other.id, now=T0 + 1)
        assert store.heartbeat(NODE_A, now=T0 + 2, lease_seconds=LEASE) == {stop.id}
        assert store.heartbeat(NODE_B, now=T0 + 2, lease_seconds=LEASE) == {other.id}
        assert must_get(store, keep.id).cancel_requested is False

    def test_heartbeat_of_an_idle_node_is_empty(self, store: Store) -> None:
        task = enqueue(store)
        assert store.heartbeat(NODE_A, now=T0, lease_seconds=LEASE) == set()
        assert must_get(store, task.id) == task

    # -- record_progress ----------------------------------------------------------------

    def test_record_progress_updates_a_running_task(self, store: Store) -> None:
        task = enqueue(store)
        claim = claim_one(store)
        updated = store.record_progress(task.id, 40, "copying", attempt=claim.attempt)
        assert updated is not None
        assert (updated.progress, updated.progress_message) == (40, "copying")
        assert must_get(store, task.id) == updated
        # Without an attempt (a handler's own POST) it applies to the current one.
        again = store.record_progress(task.id, 60, "still copying")
        assert again is not None
        assert (again.progress, again.progress_message) == (60, "still copying")

    def test_progress_without_a_message_keeps_the_last_message(self, store: Store) -> None:
        task = enqueue(store)
        claim = claim_one(store)
        store.record_progress(task.id, 10, "step one", attempt=claim.attempt)
        updated = store.record_progress(task.id, 20, None, attempt=claim.attempt)
        assert updated is not None
        assert (updated.progress, updated.progress_message) == (20, "step one")

    def test_record_progress_only_while_running(self, store: Store) -> None:
        task = enqueue(store)
        assert store.record_progress(task.id, 50, "early") is None
        assert must_get(store, task.id).progress == 0
        claim = claim_one(store)
        store.finish(task.id, claim.attempt, failed(), now=T0)
        assert store.record_progress(task.id, 90, "late") is None
        assert store.record_progress(task.id, 90, "late", attempt=claim.attempt) is None
        assert must_get(store, task.id).progress_message is None
        assert store.record_progress("no-such-task", 10, None) is None

    def test_record_progress_is_fenced_by_the_attempt(self, store: Store) -> None:
        task, second = run_to_retry(store, retry_at=T0 + 10)
        store.record_progress(task.id, 25, "attempt two", attempt=second.attempt)
        assert store.record_progress(task.id, 99, "stale", attempt=1) is None
        current = must_get(store, task.id)
        assert (current.progress, current.progress_message) == (25, "attempt two")

    # -- logs ---------------------------------------------------------------------------

    def test_append_logs_then_read_them_in_order(self, store: Store) -> None:
        task = enqueue(store)
        claim = claim_one(store)
        store.append_logs(
            task.id,
            claim.attempt,
            [("stdout", "one", T0 + 1), ("stderr", "two", T0 + 2), ("stdout", "", T0 + 3)],
        )
        store.append_logs(task.id, claim.attempt, [("stdout", "four ünïcode", T0 + 4)])
        lines = store.logs(task.id)
        assert [(ln.stream, ln.line, ln.ts) for ln in lines] == [
            ("stdout", "one", T0 + 1),
            ("stderr", "two", T0 + 2),
            ("stdout", "", T0 + 3),
            ("stdout", "four ünïcode", T0 + 4),
        ]
        assert all(ln.task_id == task.id and ln.attempt == claim.attempt for ln in lines)
        seqs = [ln.seq for ln in lines]
        assert seqs == sorted(seqs)
        assert len(set(seqs)) == len(seqs)

    def test_logs_after_and_limit_page_through_the_lines(self, store: Store) -> None:
        task = enqueue(store)
        claim = claim_one(store)
        store.append_logs(
            task.id, claim.attempt, [("stdout", f"line {i}", T0 + i) for i in range(5)]
        )
        first = store.logs(task.id)
        assert [ln.line for ln in store.logs(task.id, limit=2)] == ["line 0", "line 1"]
        page = store.logs(task.id, after=first[1].seq, limit=2)
        assert [ln.line for ln in page] == ["line 2", "line 3"]
        rest = store.logs(task.id, after=page[-1].seq)
        assert [ln.line for ln in rest] == ["line 4"]
        assert store.logs(task.id, after=rest[-1].seq) == []

    def test_logs_belong_to_their_task_and_attempt(self, store: Store) -> None:
        task = enqueue(store, "flaky")
        first = claim_one(store, now=T0)
        store.append_logs(task.id, first.attempt, [("stdout", "from attempt one", T0)])
        assert store.finish(task.id, first.attempt, failed(), now=T0 + 1, retry_at=T0)
        second = claim_one(store, now=T0)
        other = enqueue(store, "other")
        other_claim = claim_one(store)
        store.append_logs(other.id, other_claim.attempt, [("stdout", "not mine", T0)])
        store.append_logs(task.id, second.attempt, [("stdout", "from attempt two", T0)])
        assert [(ln.attempt, ln.line) for ln in store.logs(task.id)] == [
            (1, "from attempt one"),
            (2, "from attempt two"),
        ]
        assert [ln.line for ln in store.logs(other.id)] == ["not mine"]
        assert store.logs("no-such-task") == []

    def test_log_lines_of_a_settled_attempt_are_dropped(self, store: Store) -> None:
        task, second = run_to_retry(store, retry_at=T0)
        # A late flush of attempt 1 (it was taken over, or settled) is fenced like its
        # outcome; so is one of attempt 2 once it finished, and one of a pending task.
        store.append_logs(task.id, 1, [("stdout", "late, from attempt one", T0)])
        store.append_logs(task.id, second.attempt, [("stdout", "in time", T0)])
        assert store.finish(task.id, second.attempt, Outcome(AttemptStatus.COMPLETED), now=T0 + 2)
        store.append_logs(task.id, second.attempt, [("stdout", "after the end", T0)])
        pending = enqueue(store, "pending")
        store.append_logs(pending.id, 1, [("stdout", "never ran", T0)])
        assert [(ln.attempt, ln.line) for ln in store.logs(task.id)] == [(2, "in time")]
        assert store.logs(pending.id) == []

    def test_appending_no_lines_changes_nothing(self, store: Store) -> None:
        task = enqueue(store)
        claim = claim_one(store)
        store.append_logs(task.id, claim.attempt, [])
        assert store.logs(task.id) == []

    # -- finish -------------------------------------------------------------------------

    @pytest.mark.parametrize(("outcome_status", "task_status"), TERMINAL_FOR)
    def test_finish_sets_the_terminal_status_of_the_outcome(
        self, store: Store, outcome_status: AttemptStatus, task_status: TaskStatus
    ) -> None:
        task = enqueue(store)
        claim = claim_one(store)
        outcome = Outcome(outcome_status, exit_code=3, error="the reason")
        done = store.finish(task.id, claim.attempt, outcome, now=T0 + 9)
        assert done is not None
        assert done.status is task_status
        assert done.completed_at == T0 + 9
        assert done.error == "the reason"
        assert done.owner is None
        assert done.lease_expires_at is None
        assert must_get(store, task.id) == done
        [attempt] = store.attempts(task.id)
        assert attempt.status is outcome_status
        assert attempt.finished_at == T0 + 9
        assert attempt.exit_code == 3
        assert attempt.error == "the reason"
        assert store.running_attempts() == []

    def test_completed_stores_the_result_and_full_progress(self, store: Store) -> None:
        task = enqueue(store)
        claim = claim_one(store)
        store.record_progress(task.id, 30, "going", attempt=claim.attempt)
        result = {"servers": ["a", "b"], "count": 2, "ok": True, "note": "ünïcode"}
        outcome = Outcome(AttemptStatus.COMPLETED, exit_code=0, result=result, has_result=True)
        done = store.finish(task.id, claim.attempt, outcome, now=T0 + 1)
        assert done is not None
        assert done.status is TaskStatus.COMPLETED
        assert done.result == result
        assert done.progress == 100
        assert done.error is None
        assert must_get(store, task.id).result == result

    @pytest.mark.parametrize("result", [0, "", [], {}, False])
    def test_a_falsy_result_is_still_a_result(self, store: Store, result: Any) -> None:
        task = enqueue(store)
        claim = claim_one(store)
        outcome = Outcome(AttemptStatus.COMPLETED, exit_code=0, result=result, has_result=True)
        store.finish(task.id, claim.attempt, outcome, now=T0)
        stored = must_get(store, task.id).result
        assert stored == result
        assert type(stored) is type(result)

    def test_completed_without_a_result_has_none(self, store: Store) -> None:
        task = enqueue(store)
        claim = claim_one(store)
        store.finish(task.id, claim.attempt, Outcome(AttemptStatus.COMPLETED, exit_code=0), now=T0)
        done = must_get(store, task.id)
        assert done.result is None
        assert done.progress == 100

    def test_a_failure_keeps_the_progress_it_reached(self, store: Store) -> None:
        task = enqueue(store)
        claim = claim_one(store)
        store.record_progress(task.id, 30, "stuck here", attempt=claim.attempt)
        done = store.finish(task.id, claim.attempt, failed("disk full", 2), now=T0 + 1)
        assert done is not None
        assert (done.status, done.progress, done.error) == (TaskStatus.FAILED, 30, "disk full")

    def test_finish_with_retry_at_puts_the_task_back_to_pending(self, store: Store) -> None:
        task = enqueue(store)
        claim = claim_one(store)
        back = store.finish(task.id, claim.attempt, failed("flaky"), now=T0 + 1, retry_at=T0 + 30)
        assert back is not None
        assert back.status is TaskStatus.PENDING
        assert back.run_after == T0 + 30
        assert back.error == "flaky"
        assert back.owner is None
        assert back.lease_expires_at is None
        assert back.completed_at is None
        assert (back.attempt, back.tries) == (1, 1)
        assert must_get(store, task.id) == back
        [attempt] = store.attempts(task.id)
        assert attempt.status is AttemptStatus.FAILED
        assert store.next_ready_at() == T0 + 30

    def test_finish_not_counting_gives_the_try_back(self, store: Store) -> None:
        task = enqueue(store)
        claim = claim_one(store)
        interrupted = Outcome(AttemptStatus.INTERRUPTED, error="orchestrator stopped")
        back = store.finish(
            task.id, claim.attempt, interrupted, now=T0 + 1, retry_at=T0 + 1, counts=False
        )
        assert back is not None
        assert back.status is TaskStatus.PENDING
        assert (back.attempt, back.tries) == (1, 0)
        again = claim_one(store, now=T0 + 1)
        assert (again.attempt, again.task.tries) == (2, 1)
        assert [a.status for a in store.attempts(task.id)] == [
            AttemptStatus.INTERRUPTED,
            AttemptStatus.RUNNING,
        ]

    def test_a_stale_attempt_cannot_finish_the_task(self, store: Store) -> None:
        task, second = run_to_retry(store, retry_at=T0 + 10)
        store.record_progress(task.id, 20, "attempt two", attempt=second.attempt)
        before = must_get(store, task.id)
        attempts_before = store.attempts(task.id)
        late = Outcome(
            AttemptStatus.COMPLETED, exit_code=0, result={"stale": True}, has_result=True
        )
        assert store.finish(task.id, 1, late, now=T0 + 20) is None
        assert store.finish(task.id, 1, late, now=T0 + 20, retry_at=T0 + 30) is None
        assert must_get(store, task.id) == before
        assert store.attempts(task.id) == attempts_before

    def test_an_attempt_finishes_once(self, store: Store) -> None:
        task = enqueue(store)
        claim = claim_one(store)
        done = store.finish(task.id, claim.attempt, Outcome(AttemptStatus.COMPLETED), now=T0 + 1)
        assert done is not None
        assert store.finish(task.id, claim.attempt, failed(), now=T0 + 2) is None
        assert store.finish(task.id, claim.attempt, failed(), now=T0 + 2, retry_at=T0 + 3) is None
        assert must_get(store, task.id) == done
        [attempt] = store.attempts(task.id)
        assert (attempt.status, attempt.finished_at) == (AttemptStatus.COMPLETED, T0 + 1)

    def test_finish_of_a_pending_or_unknown_task_is_fenced(self, store: Store) -> None:
        task = enqueue(store)
        assert store.finish(task.id, 0, Outcome(AttemptStatus.COMPLETED), now=T0) is None
        assert store.finish(task.id, 1, Outcome(AttemptStatus.COMPLETED), now=T0) is None
        assert must_get(store, task.id) == task
        assert store.finish("no-such-task", 1, Outcome(AttemptStatus.COMPLETED), now=T0) is None

    @pytest.mark.parametrize(("outcome_status", "task_status"), TERMINAL_FOR)
    def test_a_finished_task_is_never_claimed_again(
        self, store: Store, outcome_status: AttemptStatus, task_status: TaskStatus
    ) -> None:
        task = enqueue(store)
        claim = claim_one(store)
        store.finish(task.id, claim.attempt, Outcome(outcome_status), now=T0 + 1)
        assert store.claim(NODE_A, 10, now=T0 + 1e6, lease_seconds=LEASE) == []
        assert store.next_ready_at() is None
        assert store.expired_leases(now=T0 + 1e6) == []
        assert must_get(store, task.id).status is task_status
        assert len(store.attempts(task.id)) == 1

    # -- request_cancel -----------------------------------------------------------------

    def test_cancel_of_a_pending_task_cancels_it_at_once(self, store: Store) -> None:
        task = enqueue(store)
        cancelled = store.request_cancel(task.id, now=T0 + 3)
        assert cancelled is not None
        assert cancelled.status is TaskStatus.CANCELLED
        assert cancelled.completed_at == T0 + 3
        assert must_get(store, task.id) == cancelled
        assert store.claim(NODE_A, 10, now=T0 + 1e6, lease_seconds=LEASE) == []
        assert store.attempts(task.id) == []

    def test_cancel_of_a_waiting_retry_cancels_it(self, store: Store) -> None:
        task = enqueue(store)
        claim = claim_one(store)
        store.finish(task.id, claim.attempt, failed(), now=T0, retry_at=T0 + 60)
        cancelled = store.request_cancel(task.id, now=T0 + 1)
        assert cancelled is not None
        assert cancelled.status is TaskStatus.CANCELLED
        assert store.claim(NODE_A, 10, now=T0 + 60, lease_seconds=LEASE) == []

    def test_cancel_of_a_running_task_flags_it(self, store: Store) -> None:
        task = enqueue(store)
        claim = claim_one(store)
        flagged = store.request_cancel(task.id, now=T0 + 1)
        assert flagged is not None
        assert flagged.status is TaskStatus.RUNNING
        assert flagged.cancel_requested is True
        assert flagged.owner == NODE_A
        assert must_get(store, task.id).cancel_requested is True
        done = store.finish(task.id, claim.attempt, Outcome(AttemptStatus.CANCELLED), now=T0 + 2)
        assert done is not None
        assert done.status is TaskStatus.CANCELLED

    def test_cancel_of_a_finished_task_changes_nothing(self, store: Store) -> None:
        task = enqueue(store)
        claim = claim_one(store)
        done = store.finish(task.id, claim.attempt, Outcome(AttemptStatus.COMPLETED), now=T0)
        assert store.request_cancel(task.id, now=T0 + 1) == done
        assert must_get(store, task.id) == done

    def test_cancel_of_an_unknown_task_is_none(self, store: Store) -> None:
        assert store.request_cancel("no-such-task", now=T0) is None

    # -- recovery views -----------------------------------------------------------------

    def test_running_attempts_by_owner(self, store: Store) -> None:
        a1 = enqueue(store, "a1")
        b1 = enqueue(store, "b1")
        a2 = enqueue(store, "a2")
        enqueue(store, "still-pending")
        claim_one(store, NODE_A)
        claim_one(store, NODE_B)
        claim_one(store, NODE_A)
        mine = store.running_attempts(NODE_A)
        assert [(t.id, a.number, a.node_id) for t, a in mine] == [
            (a1.id, 1, NODE_A),
            (a2.id, 1, NODE_A),
        ]
        assert all(t.status is TaskStatus.RUNNING for t, _ in mine)
        assert all(a.status is AttemptStatus.RUNNING for _, a in mine)
        assert [t.id for t, _ in store.running_attempts(NODE_B)] == [b1.id]
        assert {t.id for t, _ in store.running_attempts()} == {a1.id, b1.id, a2.id}
        assert store.running_attempts("node-unknown") == []

    def test_running_attempts_pair_a_task_with_its_current_attempt(self, store: Store) -> None:
        task, second = run_to_retry(store, retry_at=T0 + 5)
        [(running, attempt)] = store.running_attempts()
        assert running.id == task.id
        assert running.attempt == attempt.number == second.attempt == 2

    def test_expired_leases_are_those_not_renewed_in_time(self, store: Store) -> None:
        quiet = enqueue(store, "quiet")
        alive = enqueue(store, "alive")
        claim_one(store, NODE_A, now=T0)
        claim_one(store, NODE_B, now=T0)
        assert store.expired_leases(now=T0 + LEASE - 1) == []
        store.heartbeat(NODE_B, now=T0 + LEASE - 1, lease_seconds=LEASE)
        expired = store.expired_leases(now=T0 + LEASE + 1)
        assert [(t.id, a.number, a.node_id) for t, a in expired] == [(quiet.id, 1, NODE_A)]
        assert alive.id not in {t.id for t, _ in expired}
        assert {t.id for t, _ in store.expired_leases(now=T0 + 2 * LEASE)} == {quiet.id, alive.id}

    # -- reads --------------------------------------------------------------------------

    def test_list_filters_by_status_and_pages_newest_first(self, store: Store) -> None:
        created = [enqueue(store, f"t{i}", now=T0 + i) for i in range(5)]
        claim_one(store)  # t0 runs
        page = store.list_tasks(status=None, limit=10, offset=0)
        assert page.total == 5
        assert [t.name for t in page.tasks] == ["t4", "t3", "t2", "t1", "t0"]
        pending = store.list_tasks(status=TaskStatus.PENDING, limit=2, offset=0)
        assert pending.total == 4
        assert [t.name for t in pending.tasks] == ["t4", "t3"]
        second = store.list_tasks(status=TaskStatus.PENDING, limit=2, offset=2)
        assert second.total == 4
        assert [t.name for t in second.tasks] == ["t2", "t1"]
        assert store.list_tasks(status=TaskStatus.PENDING, limit=2, offset=4).tasks == []
        running = store.list_tasks(status=TaskStatus.RUNNING, limit=10, offset=0)
        assert (running.total, [t.id for t in running.tasks]) == (1, [created[0].id])
        none = store.list_tasks(status=TaskStatus.COMPLETED, limit=10, offset=0)
        assert (none.total, none.tasks) == (0, [])

    def test_counts_cover_every_status(self, store: Store) -> None:
        assert store.counts() == {status.value: 0 for status in TaskStatus}
        tasks = [enqueue(store, f"t{i}") for i in range(5)]
        done = claim_one(store)
        store.finish(done.task.id, done.attempt, Outcome(AttemptStatus.COMPLETED), now=T0)
        bad = claim_one(store)
        store.finish(bad.task.id, bad.attempt, failed(), now=T0)
        claim_one(store)
        store.request_cancel(tasks[4].id, now=T0)
        assert store.counts() == {
            "pending": 1,
            "running": 1,
            "completed": 1,
            "failed": 1,
            "cancelled": 1,
            "timed_out": 0,
            "blocked": 0,
            "skipped": 0,
        }

    def test_pending_by_priority_counts_the_queue(self, store: Store) -> None:
        assert store.pending_by_priority() == {"low": 0, "normal": 0, "high": 0, "critical": 0}
        for name, priority in [("a", "high"), ("b", "high"), ("c", "low"), ("d", "critical")]:
            enqueue(store, name, priority)
        claim_one(store)  # the critical one runs: no longer queued
        assert store.pending_by_priority() == {"low": 1, "normal": 0, "high": 2, "critical": 0}

    def test_next_ready_at_is_the_earliest_pending_time(self, store: Store) -> None:
        assert store.next_ready_at() is None
        later = enqueue(store, "later")
        sooner = enqueue(store, "sooner")
        claim_one(store)  # later runs
        claim_one(store)  # sooner runs
        assert store.next_ready_at() is None
        store.finish(later.id, 1, failed(), now=T0, retry_at=T0 + 90)
        assert store.next_ready_at() == T0 + 90
        store.finish(sooner.id, 1, failed(), now=T0, retry_at=T0 + 40)
        assert store.next_ready_at() == T0 + 40
        fresh = enqueue(store, "fresh", now=T0 + 1)
        ready_at = store.next_ready_at()
        assert ready_at is not None
        assert ready_at <= T0 + 1
        assert names(store.claim(NODE_A, 1, now=ready_at, lease_seconds=LEASE)) == [fresh.name]

    # -- durability and sharing -----------------------------------------------------------

    def test_everything_survives_closing_and_reopening(self, backend: Backend) -> None:
        if not backend.shared:
            pytest.skip("this backend's data lives only as long as its handle")
        first = backend.open()
        done = enqueue(first, "done")
        retrying = enqueue(first, "retrying", "high")
        waiting = enqueue(first, "waiting", "low")
        c1 = claim_one(first)  # retrying (high)
        c2 = claim_one(first)  # done
        first.record_process(c1.task.id, c1.attempt, ProcessInfo(7, 7, 70, "boot"))
        first.append_logs(c2.task.id, c2.attempt, [("stdout", "hello", T0)])
        first.finish(
            done.id,
            c2.attempt,
            Outcome(AttemptStatus.COMPLETED, 0, result={"x": 1}, has_result=True),
            now=T0 + 1,
        )
        first.finish(retrying.id, c1.attempt, failed(), now=T0 + 1, retry_at=T0 + 50)
        version = first.meta()["schema_version"]
        snapshot = {t.id: must_get(first, t.id) for t in (done, retrying, waiting)}
        attempts = {t.id: first.attempts(t.id) for t in (done, retrying, waiting)}
        logs = first.logs(done.id)
        backend.close(first)

        reopened = backend.open()
        assert reopened.meta()["schema_version"] == version
        for task_id, task in snapshot.items():
            assert reopened.get(task_id) == task
            assert reopened.attempts(task_id) == attempts[task_id]
        assert reopened.logs(done.id) == logs
        assert reopened.next_ready_at() is not None
        assert names(reopened.claim(NODE_A, 5, now=T0 + 50, lease_seconds=LEASE)) == [
            "retrying",
            "waiting",
        ]
        assert reopened.attempts(retrying.id)[-1].number == 2

    def test_concurrent_claims_from_two_handles_never_overlap(self, backend: Backend) -> None:
        if not backend.shared:
            pytest.skip("a second handle does not see this backend's database")
        handles = [backend.open(), backend.open()]
        ids = {enqueue(handles[0], f"t{i}").id for i in range(60)}
        claimed: list[str] = []
        lock = threading.Lock()
        errors: list[BaseException] = []

        def worker(store: Store, node: str) -> None:
            try:
                while batch := store.claim(node, 3, now=T0, lease_seconds=LEASE):
                    with lock:
                        claimed.extend(c.task.id for c in batch)
            except BaseException as exc:  # reported below, in the test's thread
                errors.append(exc)

        threads = [
            threading.Thread(target=worker, args=(handles[i % 2], f"node-{i}")) for i in range(4)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert sorted(claimed) == sorted(ids)
        assert all(len(handles[1].attempts(task_id)) == 1 for task_id in ids)
