"""PostgreSQL-specific behaviour: several nodes (each a store on its own connection)
on one database at the same moment, migrations at once, LISTEN/NOTIFY, fencing of a
taken-over attempt, group commit, and the workflow verbs checked verb for verb
against the SQLite backend. The shared conformance suite runs on PostgreSQL too
(``test_store_conformance.py``); this file covers what it cannot.

Times are explicit (``now``) as in the conformance suite; simultaneity comes from
threads released together by a barrier, never from sleeps.
"""

from __future__ import annotations

import dataclasses
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import psycopg
import psycopg.errors
import pytest
from psycopg.conninfo import conninfo_to_dict
from pydantic import BaseModel

from provisioning.drivers.pg import mask_dsn
from provisioning.orchestrator.models import Claim, NewStep, Task
from provisioning.orchestrator.store.postgres import PostgresStore
from provisioning.orchestrator.store.sqlite import SQLiteStore
from provisioning.tasks import (
    AttemptStatus,
    NewTask,
    Outcome,
    RetryPolicy,
    TaskStatus,
    WorkflowStatus,
)
from tests.integration.pg_server import PostgresServer

T0 = 1_700_000_000.0
LEASE = 30.0
DEFAULT_TIMEOUT = 600.0
DEFAULT_RETRY = RetryPolicy(max_attempts=3, backoff="linear", initial_delay=5, max_delay=50)
OK = Outcome(AttemptStatus.COMPLETED, exit_code=0)
JOIN_TIMEOUT = 60.0


def new_task(name: str) -> NewTask:
    return NewTask.model_validate({"name": name, "run": {"command": ["true"]}})


def step(
    step_id: str,
    *,
    items: int = 1,
    deps: Sequence[str] = (),
    on_failure: str = "fail",
    kind: str = "run",
    position: int = 0,
) -> NewStep:
    return NewStep(
        step_id=step_id,
        kind=kind,
        position=position,
        layer=0,
        on_failure=on_failure,
        depends_on=tuple(deps),
        tasks=tuple(new_task(f"{step_id}-{i}") for i in range(items)),
    )


def failed(error: str = "boom") -> Outcome:
    return Outcome(AttemptStatus.FAILED, exit_code=1, error=error)


def enqueue(store: PostgresStore | SQLiteStore, name: str = "task", now: float = T0) -> Task:
    return store.enqueue(
        new_task(name), default_timeout=DEFAULT_TIMEOUT, default_retry=DEFAULT_RETRY, now=now
    )


def create_workflow(
    store: PostgresStore | SQLiteStore,
    steps: Sequence[NewStep],
    *,
    name: str = "wf",
    parallel_limit: int = 100,
    rollback_enabled: bool = False,
    now: float = T0,
) -> str:
    workflow = store.create_workflow(
        name=name,
        version="1.0.0",
        spec={"name": name},
        priority="normal",
        parallel_limit=parallel_limit,
        rollback_enabled=rollback_enabled,
        steps=steps,
        default_timeout=DEFAULT_TIMEOUT,
        default_retry=DEFAULT_RETRY,
        now=now,
    )
    return workflow.id


def together(count: int, work: Callable[[int], Any]) -> list[Any]:
    """Run ``work(0..count-1)`` on as many threads released at the same moment; their
    results in order (an exception in any of them fails the test)."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            barrier.wait()
            results[index] = work(index)
        except BaseException as exc:  # reported in the test's thread
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(JOIN_TIMEOUT)
    assert not any(thread.is_alive() for thread in threads), "a thread did not finish"
    if errors:
        raise errors[0]
    return results


@pytest.fixture
def dsn(pg_dsn: Callable[[], str]) -> str:
    return pg_dsn()


@pytest.fixture
def connect(dsn: str) -> Iterator[Callable[[], PostgresStore]]:
    """Open another node's store on the test's database (migrated; closed at the end)."""
    opened: list[PostgresStore] = []

    def open_store() -> PostgresStore:
        store = PostgresStore(dsn)
        opened.append(store)
        store.migrate()
        return store

    yield open_store
    for store in opened:
        store.close()


def sql(dsn: str, query: str, *args: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(query, args).fetchall()


# -- several nodes at once ----------------------------------------------------------------


def test_concurrent_claims_never_take_a_task_twice(
    connect: Callable[[], PostgresStore], dsn: str
) -> None:
    first = connect()
    calls = [lambda i=i: enqueue(first, f"t{i}") for i in range(500)]
    results = first.run_batch(calls)
    assert all(ok for ok, _ in results)
    ids = {task.id for _, task in results}
    assert len(ids) == 500
    nodes = [connect() for _ in range(8)]

    def claim_all(index: int) -> list[Claim]:
        mine: list[Claim] = []
        while batch := nodes[index].claim(f"node-{index}", 7, now=T0, lease_seconds=LEASE):
            mine.extend(batch)
        return mine

    per_node = together(8, claim_all)
    claimed = Counter(claim.task.id for claims in per_node for claim in claims)
    assert set(claimed) == ids
    assert max(claimed.values()) == 1
    assert all(claim.attempt == 1 for claims in per_node for claim in claims)
    # The database agrees: one attempt per task, owned by the node that got the claim.
    owners = {claim.task.id: f"node-{i}" for i, claims in enumerate(per_node) for claim in claims}
    rows = sql(dsn, "SELECT task_id, COUNT(*), MIN(node_id) FROM attempts GROUP BY task_id")
    assert {task_id: (n, node) for task_id, n, node in rows} == {
        task_id: (1, owner) for task_id, owner in owners.items()
    }
    assert first.counts()["running"] == 500
    assert sum(len(claims) > 0 for claims in per_node) >= 2  # the work was really shared


def test_nodes_starting_at_once_migrate_exactly_once(dsn: str) -> None:
    stores = [PostgresStore(dsn) for _ in range(6)]
    try:
        versions = together(6, lambda i: stores[i].migrate())
        assert len(set(versions)) == 1
        version = versions[0]
        assert version >= 3
        rows = sql(dsn, "SELECT version, COUNT(*) FROM schema_version GROUP BY version")
        assert sorted(rows) == [(v, 1) for v in range(1, version + 1)]
        assert all(store.meta()["schema_version"] == version for store in stores)
        assert stores[0].migrate() == version
        assert len(sql(dsn, "SELECT * FROM schema_version")) == version
    finally:
        for store in stores:
            store.close()


def test_fan_in_is_released_once_when_its_steps_finish_at_the_same_moment(
    connect: Callable[[], PostgresStore],
) -> None:
    nodes = [connect() for _ in range(8)]
    for round_number in range(4):
        steps = [step(f"s{i}", items=2) for i in range(8)]
        steps.append(step("join", items=3, deps=[f"s{i}" for i in range(8)]))
        workflow_id = create_workflow(nodes[0], steps, name=f"fan-in-{round_number}")
        claims = [
            node.claim(f"node-{i}", 2, now=T0, lease_seconds=LEASE) for i, node in enumerate(nodes)
        ]
        assert sorted(len(c) for c in claims) == [2] * 8

        def finish_mine(index: int, claims: list[list[Claim]] = claims) -> list[Task | None]:
            return [
                nodes[index].finish(c.task.id, c.attempt, OK, now=T0 + 1) for c in claims[index]
            ]

        finished = [t for ts in together(8, finish_mine) for t in ts]
        assert all(t is not None and t.status is TaskStatus.COMPLETED for t in finished)
        workflow = nodes[0].get_workflow(workflow_id)
        assert workflow is not None
        assert (workflow.tasks_completed, workflow.tasks_open, workflow.steps_completed) == (
            16,
            3,
            8,
        )
        assert workflow.status is WorkflowStatus.RUNNING
        join = {s.step_id: s for s in nodes[0].workflow_steps(workflow_id)}["join"]
        assert (join.status, join.waiting_on, join.completed) == ("ready", 0, 0)
        tasks = nodes[0].workflow_tasks(workflow_id)
        assert sorted(t.status for t in tasks if t.step_id == "join") == [TaskStatus.PENDING] * 3

        # The last step's tasks end on three nodes at once: the workflow ends exactly once.
        last = [nodes[i].claim(f"node-{i}", 1, now=T0 + 2, lease_seconds=LEASE) for i in range(3)]
        assert [len(c) for c in last] == [1, 1, 1]
        ends = [claims[0] for claims in last]
        done = together(
            3,
            lambda i, ends=ends: nodes[i].finish(ends[i].task.id, ends[i].attempt, OK, now=T0 + 3),
        )
        moved = [t.workflow_status for t in done if t is not None]
        assert len(moved) == 3
        assert moved.count(WorkflowStatus.COMPLETED) == 1
        assert moved.count(None) == 2
        workflow = nodes[0].get_workflow(workflow_id)
        assert workflow is not None
        assert workflow.status is WorkflowStatus.COMPLETED
        assert (workflow.tasks_completed, workflow.tasks_open, workflow.steps_completed) == (
            19,
            0,
            9,
        )


def test_steps_failing_at_the_same_moment_fail_the_workflow_once(
    connect: Callable[[], PostgresStore],
) -> None:
    nodes = [connect() for _ in range(4)]
    steps = [step(f"s{i}", on_failure="continue") for i in range(4)]
    steps.append(step("after", deps=["s0", "s1"]))
    workflow_id = create_workflow(nodes[0], steps)
    claims = [
        node.claim(f"node-{i}", 1, now=T0, lease_seconds=LEASE) for i, node in enumerate(nodes)
    ]
    done = together(
        4,
        lambda i: nodes[i].finish(claims[i][0].task.id, claims[i][0].attempt, failed(), now=T0 + 1),
    )
    assert [t.workflow_status for t in done if t is not None].count(WorkflowStatus.FAILED) == 1
    workflow = nodes[0].get_workflow(workflow_id)
    assert workflow is not None
    assert (workflow.status, workflow.tasks_failed, workflow.tasks_open) == (
        WorkflowStatus.FAILED,
        4,
        0,
    )
    after = [t for t in nodes[0].workflow_tasks(workflow_id) if t.step_id == "after"]
    assert [t.status for t in after] == [TaskStatus.SKIPPED]


def test_parallel_limit_holds_across_claimers(connect: Callable[[], PostgresStore]) -> None:
    nodes = [connect() for _ in range(3)]
    workflow_id = create_workflow(nodes[0], [step("many", items=30)], parallel_limit=3)
    remaining = 30
    now = T0
    while remaining:
        claims = together(
            3, lambda i, now=now: nodes[i].claim(f"node-{i}", 10, now=now, lease_seconds=LEASE)
        )
        got = [c for cs in claims for c in cs]
        running = [
            t for t in nodes[0].workflow_tasks(workflow_id) if t.status is TaskStatus.RUNNING
        ]
        assert len(running) == len(got) == min(3, remaining)
        # Finish them on the nodes that claimed them, again all at once.
        together(
            3,
            lambda i, now=now, claims=claims: [
                nodes[i].finish(c.task.id, c.attempt, OK, now=now) for c in claims[i]
            ],
        )
        remaining -= len(got)
        now += 1
    workflow = nodes[0].get_workflow(workflow_id)
    assert workflow is not None
    assert (workflow.status, workflow.tasks_completed) == (WorkflowStatus.COMPLETED, 30)


def test_parallel_limit_holds_while_tasks_finish_elsewhere(
    connect: Callable[[], PostgresStore], dsn: str
) -> None:
    claimers = [connect(), connect()]
    finisher = connect()
    workflow_id = create_workflow(claimers[0], [step("many", items=60)], parallel_limit=4)
    finished: set[str] = set()
    stop = threading.Event()

    def finish_running() -> None:
        while not stop.is_set():
            for task, attempt in finisher.running_attempts():
                if finisher.finish(task.id, attempt.number, OK, now=T0) is not None:
                    finished.add(task.id)

    def claim(index: int) -> int:
        peak = 0
        with psycopg.connect(dsn, autocommit=True) as observer:
            while len(finished) < 60:
                claimers[index].claim(f"node-{index}", 3, now=T0, lease_seconds=LEASE)
                # Right after our commit: never more running than the limit.
                row = observer.execute(
                    "SELECT COUNT(*) FROM tasks WHERE workflow_id = %s AND status = 'running'",
                    (workflow_id,),
                ).fetchone()
                assert row is not None
                peak = max(peak, row[0])
        return peak

    helper = threading.Thread(target=finish_running)
    helper.start()
    try:
        peaks = together(2, claim)
    finally:
        stop.set()
        helper.join(JOIN_TIMEOUT)
    assert max(peaks) <= 4
    workflow = claimers[0].get_workflow(workflow_id)
    assert workflow is not None
    assert (workflow.status, workflow.tasks_completed) == (WorkflowStatus.COMPLETED, 60)
    rows = sql(dsn, "SELECT COUNT(*) FROM attempts")
    assert rows == [(60,)]


# -- fencing ------------------------------------------------------------------------------


def test_a_taken_over_attempt_can_no_longer_record_anything(
    connect: Callable[[], PostgresStore],
) -> None:
    node_a, node_b = connect(), connect()
    task = enqueue(node_a)
    [first] = node_a.claim("node-a", 1, now=T0, lease_seconds=LEASE)
    assert node_b.expired_leases(now=T0 + LEASE - 1) == []
    # node-a stops heartbeating; once its lease ran out node-b settles the attempt ...
    [(expired, attempt)] = node_b.expired_leases(now=T0 + LEASE + 1)
    assert (expired.id, attempt.number, attempt.node_id) == (task.id, 1, "node-a")
    lost = Outcome(AttemptStatus.LOST, error="its node stopped renewing its lease")
    back = node_b.finish(task.id, 1, lost, now=T0 + LEASE + 1, retry_at=T0 + LEASE + 1)
    assert back is not None
    assert back.status is TaskStatus.PENDING
    # ... and runs it again.
    [second] = node_b.claim("node-b", 1, now=T0 + LEASE + 1, lease_seconds=LEASE)
    assert (second.task.id, second.attempt) == (task.id, 2)
    before = node_b.get(task.id)
    # node-a comes back with a late answer for its attempt: refused, nothing changes.
    late = Outcome(AttemptStatus.COMPLETED, exit_code=0, result={"late": True}, has_result=True)
    assert node_a.finish(task.id, first.attempt, late, now=T0 + 40) is None
    assert node_a.finish(task.id, first.attempt, failed(), now=T0 + 40, retry_at=T0 + 41) is None
    assert node_a.record_progress(task.id, 99, "late", attempt=first.attempt) is None
    assert node_a.get(task.id) == before
    assert node_a.heartbeat("node-a", now=T0 + 40, lease_seconds=LEASE) == set()
    assert node_a.get(task.id) == before
    done = node_b.finish(task.id, second.attempt, OK, now=T0 + 50)
    assert done is not None
    assert done.status is TaskStatus.COMPLETED
    assert [(a.number, a.node_id, a.status) for a in node_b.attempts(task.id)] == [
        (1, "node-a", AttemptStatus.LOST),
        (2, "node-b", AttemptStatus.COMPLETED),
    ]


def test_a_late_answer_racing_the_takeover_is_written_once(
    connect: Callable[[], PostgresStore],
) -> None:
    node_a, node_b = connect(), connect()
    lost = Outcome(AttemptStatus.LOST, error="taken over")
    for round_number in range(15):
        task = enqueue(node_a, f"t{round_number}")
        [claim] = node_a.claim("node-a", 1, now=T0, lease_seconds=LEASE)

        def answer(index: int, task: Task = task, attempt: int = claim.attempt) -> Task | None:
            if index == 0:  # the late answer of the node that came back
                return node_a.finish(task.id, attempt, OK, now=T0 + 31)
            return node_b.finish(task.id, attempt, lost, now=T0 + 31, retry_at=T0 + 31)

        results = together(2, answer)
        assert sum(r is not None for r in results) == 1
        [attempt] = node_a.attempts(task.id)
        current = node_a.get(task.id)
        assert current is not None
        if results[0] is not None:
            assert (attempt.status, current.status) == (
                AttemptStatus.COMPLETED,
                TaskStatus.COMPLETED,
            )
        else:
            assert (attempt.status, current.status) == (AttemptStatus.LOST, TaskStatus.PENDING)
            node_b.request_cancel(task.id, now=T0 + 32)


# -- LISTEN/NOTIFY ------------------------------------------------------------------------


def wait_in_thread(store: PostgresStore, timeout: float) -> tuple[threading.Thread, list[bool]]:
    result: list[bool] = []
    thread = threading.Thread(target=lambda: result.append(store.wait_for_work(timeout)))
    thread.start()
    return thread, result


def test_wait_for_work_wakes_when_another_node_enqueues(
    connect: Callable[[], PostgresStore],
) -> None:
    idle, busy = connect(), connect()
    idle.listen()
    thread, result = wait_in_thread(idle, 30)
    enqueue(busy)
    thread.join(JOIN_TIMEOUT)
    assert result == [True]
    # Consumed: with nothing new, the next wait runs out.
    assert idle.wait_for_work(0.05) is False


def test_notifications_sent_while_not_waiting_are_not_lost(
    connect: Callable[[], PostgresStore],
) -> None:
    idle, busy = connect(), connect()
    idle.listen()
    task = enqueue(busy)
    assert idle.wait_for_work(30) is True
    # A retry scheduled by another node wakes idle nodes too.
    [claim] = busy.claim("busy", 1, now=T0, lease_seconds=LEASE)
    assert idle.wait_for_work(0.05) is False  # a claim makes nothing claimable
    busy.finish(task.id, claim.attempt, failed(), now=T0, retry_at=T0 + 5)
    assert idle.wait_for_work(30) is True


def test_workflow_creation_and_release_notify(connect: Callable[[], PostgresStore]) -> None:
    idle, busy = connect(), connect()
    idle.listen()
    create_workflow(busy, [step("a"), step("b", deps=["a"])])
    assert idle.wait_for_work(30) is True
    [claim] = busy.claim("busy", 5, now=T0, lease_seconds=LEASE)
    assert idle.wait_for_work(0.05) is False
    busy.finish(claim.task.id, claim.attempt, OK, now=T0)  # releases b
    assert idle.wait_for_work(30) is True


def test_wait_for_work_starts_listening_itself_and_returns_on_close(dsn: str) -> None:
    from provisioning.orchestrator.store import StoreError

    store = PostgresStore(dsn)
    store.migrate()
    # Not listening yet: it starts, and answers "claim now" (something may be missed).
    assert store.wait_for_work(30) is True
    outcome: list[object] = []

    def wait() -> None:
        try:
            outcome.append(store.wait_for_work(60))
        except StoreError as exc:  # close() came first: a closed store refuses to wait
            outcome.append(exc)

    thread = threading.Thread(target=wait)
    thread.start()
    store.close()
    thread.join(JOIN_TIMEOUT)
    assert not thread.is_alive()
    assert outcome == [False] or "closed" in str(outcome[0])
    with pytest.raises(StoreError, match="closed"):
        store.wait_for_work(1)


# -- group commit -------------------------------------------------------------------------


def test_run_batch_isolates_a_failing_verb(connect: Callable[[], PostgresStore]) -> None:
    store = connect()
    store.register_node("n1", host="h", pid=1, max_concurrent=2, now=T0)
    outcomes = store.run_batch(
        [
            lambda: enqueue(store, "before"),
            lambda: store.register_node("n1", host="h", pid=2, max_concurrent=2, now=T0),
            lambda: enqueue(store, "after"),
            lambda: store.get("no-such-task"),
        ]
    )
    assert [ok for ok, _ in outcomes] == [True, False, True, True]
    assert isinstance(outcomes[1][1], psycopg.errors.UniqueViolation)
    assert outcomes[3][1] is None
    assert sorted(t.name for t in store.list_tasks(status=None, limit=10, offset=0).tasks) == [
        "after",
        "before",
    ]
    assert [n.pid for n in store.nodes()] == [1]


def test_a_batched_verb_that_waits_for_a_lock_runs_after_the_batch(
    connect: Callable[[], PostgresStore], dsn: str
) -> None:
    store, listener = connect(), connect()
    workflow_id = create_workflow(store, [step("a", items=2)])
    [claim, _] = store.claim("n", 2, now=T0, lease_seconds=LEASE)
    listener.listen()
    with psycopg.connect(dsn) as holder:
        # Another transaction holds the workflow's row: the batched finish would wait.
        holder.execute("SELECT id FROM workflows WHERE id = %s FOR UPDATE", (workflow_id,))
        outcomes: list[list[tuple[bool, Any]]] = []
        batch = threading.Thread(
            target=lambda: outcomes.append(
                store.run_batch(
                    [
                        lambda: store.finish(claim.task.id, claim.attempt, OK, now=T0 + 1),
                        lambda: enqueue(store, "also in the batch"),
                    ]
                )
            )
        )
        batch.start()
        # The batch committed without the finish (its enqueue notified) ...
        assert listener.wait_for_work(30) is True
        finished = sql(dsn, "SELECT status FROM tasks WHERE id = %s", claim.task.id)
        assert finished == [("running",)]
        holder.rollback()  # ... which runs on its own once the lock is free.
        batch.join(JOIN_TIMEOUT)
    [[(finish_ok, done), (enqueue_ok, _)]] = outcomes
    assert finish_ok and enqueue_ok
    assert done is not None
    assert done.status is TaskStatus.COMPLETED


# -- meta, nodes, migrate-store -------------------------------------------------------------


def test_meta_masks_the_password(pg_server: PostgresServer, dsn: str) -> None:
    dbname = dsn.rsplit("dbname=", 1)[1]
    url = f"postgresql://postgres:s3cret@127.0.0.1:{pg_server.port}/{dbname}?sslmode=disable"
    for given in (url, pg_server.dsn(dbname, password="s3cret")):
        store = PostgresStore(given)
        try:
            version = store.migrate()
            meta = store.meta()
        finally:
            store.close()
        assert meta["backend"] == "postgres"
        assert meta["schema_version"] == version
        assert str(meta["server_version"]).split(".")[0].isdigit()
        assert "s3cret" not in meta["dsn"]
        assert "***" in meta["dsn"]
        assert dbname in meta["dsn"]
    assert mask_dsn("postgresql://u@h/db?password=x&sslmode=require") == (
        "postgresql://u@h/db?password=***&sslmode=require"
    )
    assert mask_dsn("host=h user=u") == "host=h user=u"


def test_a_bad_dsn_is_a_store_error(pg_server: PostgresServer) -> None:
    from provisioning.orchestrator.store import StoreError

    with pytest.raises(StoreError, match=r"cannot connect.*\*\*\*") as caught:
        PostgresStore(pg_server.dsn("no_such_database", password="hidden"))
    assert "hidden" not in str(caught.value)


def test_nodes_heartbeats_and_running_counts(connect: Callable[[], PostgresStore]) -> None:
    node_a, node_b = connect(), connect()
    node_a.register_node("node-a", host="ha", pid=11, max_concurrent=4, now=T0)
    node_b.register_node("node-b", host="hb", pid=22, max_concurrent=2, now=T0 + 1)
    tasks = [enqueue(node_a, f"t{i}") for i in range(3)]
    node_a.claim("node-a", 2, now=T0, lease_seconds=LEASE)
    node_b.claim("node-b", 2, now=T0, lease_seconds=LEASE)
    node_b.request_cancel(tasks[2].id, now=T0 + 2)
    assert node_a.heartbeat("node-a", now=T0 + 10, lease_seconds=LEASE) == set()
    assert node_b.heartbeat("node-b", now=T0 + 12, lease_seconds=LEASE) == {tasks[2].id}
    seen = node_b.nodes()
    assert [(n.id, n.host, n.pid, n.max_concurrent, n.last_seen, n.running) for n in seen] == [
        ("node-a", "ha", 11, 4, T0 + 10, 2),
        ("node-b", "hb", 22, 2, T0 + 12, 1),
    ]
    node_b.deregister_node("node-b")
    assert [n.id for n in node_a.nodes()] == ["node-a"]


def test_load_copies_a_sqlite_store(connect: Callable[[], PostgresStore]) -> None:
    source = SQLiteStore(":memory:")
    source.migrate()
    drive(source)
    target = connect()
    counts = target.load(source.dump())
    assert counts["tasks"] == sum(source.counts().values())
    for workflow in source.list_workflows(status=None, limit=100, offset=0)[0]:
        assert target.get_workflow(workflow.id) == workflow
        assert target.workflow_steps(workflow.id) == source.workflow_steps(workflow.id)
        assert target.workflow_tasks(workflow.id) == source.workflow_tasks(workflow.id)
        assert target.workflow_spec(workflow.id) == source.workflow_spec(workflow.id)
    for task in source.list_tasks(status=None, limit=1000, offset=0).tasks:
        assert target.get(task.id) == task
        assert target.attempts(task.id) == source.attempts(task.id)
        assert target.logs(task.id) == source.logs(task.id)
    # New rows continue after the copied ones; a second load is refused.
    fresh = enqueue(target, "fresh")
    assert fresh.seq > max(
        t.seq for t in source.list_tasks(status=None, limit=1000, offset=0).tasks
    )
    from provisioning.orchestrator.store import StoreError

    with pytest.raises(StoreError, match="not empty"):
        target.load(source.dump())
    source.close()


# -- the same verbs, the same answers as SQLite ----------------------------------------------


class Driver:
    """Runs a script of verbs against one store and records every answer and the
    state after it, with generated ids replaced by stable names."""

    def __init__(self, store: PostgresStore | SQLiteStore) -> None:
        self.store = store
        self.now = T0
        self.names: dict[str, str] = {}
        self.workflows: dict[str, str] = {}
        self.record: list[Any] = []

    def tick(self) -> float:
        self.now += 1
        return self.now

    def task(self, workflow: str, step_id: str, item: int = 0) -> Task:
        for task in self.store.workflow_tasks(self.workflows[workflow]):
            if (task.step_id, task.item) == (step_id, item):
                return task
        raise AssertionError(f"no task {workflow}:{step_id}/{item}")

    def plain(self, value: Any) -> Any:
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return {f.name: self.plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, BaseModel):
            return value.model_dump()
        if isinstance(value, dict):
            return {self.plain(k): self.plain(v) for k, v in value.items()}
        if isinstance(value, set):
            return sorted(self.plain(v) for v in value)
        if isinstance(value, list | tuple):
            return [self.plain(v) for v in value]
        if isinstance(value, str):
            return self.names.get(value, value)
        return value

    def note(self, label: str, answer: Any) -> Any:
        for name, workflow_id in self.workflows.items():
            for task in self.store.workflow_tasks(workflow_id):
                self.names[task.id] = f"{name}:{task.step_id}/{task.item}"
        state: dict[str, Any] = {
            "counts": self.store.counts(),
            "next_ready_at": self.store.next_ready_at(),
            "running": self.store.running_attempts(),
            "expired": self.store.expired_leases(now=self.now + LEASE),
            "nodes": self.store.nodes(),
        }
        for name, workflow_id in self.workflows.items():
            tasks = self.store.workflow_tasks(workflow_id)
            state[name] = {
                "workflow": self.store.get_workflow(workflow_id),
                "steps": self.store.workflow_steps(workflow_id),
                "tasks": tasks,
                "attempts": [self.store.attempts(t.id) for t in tasks],
            }
        self.record.append((label, self.plain(answer), self.plain(state)))
        return answer

    def create(self, name: str, steps: Sequence[NewStep], **options: Any) -> None:
        workflow_id = create_workflow(self.store, steps, name=name, now=self.tick(), **options)
        self.workflows[name] = workflow_id
        self.names[workflow_id] = f"workflow:{name}"
        self.note(f"create {name}", self.store.get_workflow(workflow_id))

    def claim(self, node: str, limit: int) -> list[Claim]:
        claims = self.store.claim(node, limit, now=self.tick(), lease_seconds=LEASE)
        return list(self.note(f"claim {node} {limit}", claims))

    def finish(
        self,
        workflow: str,
        step_id: str,
        item: int = 0,
        outcome: Outcome = OK,
        *,
        retry_in: float | None = None,
        attempt: int | None = None,
    ) -> None:
        task = self.task(workflow, step_id, item)
        now = self.tick()
        retry_at = None if retry_in is None else now + retry_in
        answer = self.store.finish(
            task.id, attempt or task.attempt, outcome, now=now, retry_at=retry_at
        )
        self.note(f"finish {workflow}:{step_id}/{item}", answer)

    def run_all(self, workflow: str, node: str = "n1") -> None:
        while claims := self.claim(node, 10):
            for claim in claims:
                assert claim.task.step_id is not None and claim.task.item is not None
                self.finish(workflow, claim.task.step_id, claim.task.item)

    def call(self, label: str, verb: str, *args: Any, **kwargs: Any) -> Any:
        return self.note(label, getattr(self.store, verb)(*args, **kwargs))


def drive(store: PostgresStore | SQLiteStore) -> list[Any]:
    d = Driver(store)
    d.call("register n1", "register_node", "n1", host="h1", pid=1, max_concurrent=4, now=T0)
    d.call("register n2", "register_node", "n2", host="h2", pid=2, max_concurrent=4, now=T0)

    # A diamond: a 'continue' failure skips what depends on it; a retry; reset; rollback.
    d.create(
        "diamond",
        [
            step("a", items=2),
            step("b", deps=["a"], on_failure="continue", position=1),
            step("c", deps=["b"], position=2),
            step("d", deps=["a"], position=3),
            step("e", deps=["c", "d"], position=4),
        ],
        parallel_limit=2,
        rollback_enabled=True,
    )
    d.claim("n1", 5)
    d.finish("diamond", "a", 0)
    d.claim("n2", 5)
    d.finish("diamond", "a", 1)
    d.claim("n1", 1)
    d.claim("n2", 5)
    b = d.task("diamond", "b")
    d.call("progress b", "record_progress", b.id, 40, "half", attempt=b.attempt)
    d.call("logs b", "append_logs", b.id, b.attempt, [("stdout", "line", d.now)])
    d.finish("diamond", "b", outcome=failed("flaky"), retry_in=5)
    d.claim("n1", 5)
    d.now += 10
    d.claim("n1", 5)
    d.finish("diamond", "b", 0, failed("for good"))
    d.finish("diamond", "b", 0, OK, attempt=1)  # stale: fenced
    d.call("heartbeat", "heartbeat", "n2", now=d.tick(), lease_seconds=LEASE)
    d.finish("diamond", "d")
    d.call("reset diamond", "reset_workflow", d.workflows["diamond"], now=d.tick())
    d.run_all("diamond")
    d.call("rollback diamond", "request_rollback", d.workflows["diamond"])
    d.call("rollback again", "request_rollback", d.workflows["diamond"])
    undo = [
        step("undo-e", kind="undo"),
        step("undo-d", kind="undo", deps=["undo-e"], position=1),
        step("undo-a", kind="undo", items=2, deps=["undo-d"], position=2),
    ]
    d.call(
        "begin undo",
        "begin_undo",
        d.workflows["diamond"],
        undo,
        default_timeout=DEFAULT_TIMEOUT,
        default_retry=DEFAULT_RETRY,
        now=d.tick(),
    )
    d.run_all("diamond", "n2")

    # 'fail': the first failure skips what has not started; running tasks go on.
    d.create(
        "failing",
        [step("x", items=3, on_failure="fail"), step("y", deps=["x"], position=1)],
        parallel_limit=2,
    )
    d.claim("n1", 5)
    d.finish("failing", "x", 0, failed())
    d.finish("failing", "x", 1, Outcome(AttemptStatus.TIMED_OUT, error="too slow"))
    d.call("reset failing", "reset_workflow", d.workflows["failing"], now=d.tick())
    d.run_all("failing")

    # 'rollback': the workflow waits for its undo steps; an undo that fails.
    d.create(
        "rb",
        [
            step("p"),
            step("q", deps=["p"], on_failure="rollback", position=1),
            step("r", deps=["q"]),
        ],
        rollback_enabled=True,
    )
    d.claim("n1", 5)
    d.finish("rb", "p")
    d.claim("n1", 5)
    d.finish("rb", "q", 0, failed())
    for label in ("begin undo rb", "begin undo rb again"):
        d.call(
            label,
            "begin_undo",
            d.workflows["rb"],
            [step("undo-p", kind="undo")],
            default_timeout=DEFAULT_TIMEOUT,
            default_retry=DEFAULT_RETRY,
            now=d.tick(),
        )
    d.claim("n1", 5)
    d.finish("rb", "undo-p", 0, failed("undo broke"))

    # Cancel: pending tasks at once, running ones flagged, then reset.
    d.create("cancel", [step("m", items=4), step("n", deps=["m"], position=1)], parallel_limit=2)
    d.claim("n1", 5)
    d.call("cancel m2", "request_cancel", d.task("cancel", "m", 2).id, now=d.tick())
    d.call("cancel m1 (running)", "request_cancel", d.task("cancel", "m", 1).id, now=d.tick())
    workflow_cancel = d.call("cancel wf", "cancel_workflow", d.workflows["cancel"], now=d.tick())
    assert workflow_cancel is not None
    d.call("heartbeat n1", "heartbeat", "n1", now=d.tick(), lease_seconds=LEASE)
    d.finish("cancel", "m", 0, Outcome(AttemptStatus.CANCELLED))
    d.finish("cancel", "m", 1, OK)
    d.call("cancel wf again", "cancel_workflow", d.workflows["cancel"], now=d.tick())
    d.call("reset cancel", "reset_workflow", d.workflows["cancel"], now=d.tick())
    d.run_all("cancel")

    # A cancelled rollback_pending workflow; unknown ids.
    d.create("pending-rb", [step("z", on_failure="rollback")], rollback_enabled=True)
    d.claim("n2", 1)
    d.finish("pending-rb", "z", 0, failed())
    d.call("cancel pending-rb", "cancel_workflow", d.workflows["pending-rb"], now=d.tick())
    d.call("unknown cancel", "cancel_workflow", "no-such-workflow", now=d.tick())
    d.call("unknown reset", "reset_workflow", "no-such-workflow", now=d.tick())
    d.call("unknown rollback", "request_rollback", "no-such-workflow")
    d.call("unknown spec", "workflow_spec", "no-such-workflow")
    d.call("spec", "workflow_spec", d.workflows["rb"])
    d.call("list", "list_workflows", status=None, limit=3, offset=1)
    d.call("list failed", "list_workflows", status=WorkflowStatus.FAILED, limit=10, offset=0)
    d.call("in rollback_failed", "workflows_in", WorkflowStatus.ROLLBACK_FAILED)
    d.call("deregister", "deregister_node", "n2")
    return d.record


def test_workflow_verbs_answer_exactly_as_sqlite(connect: Callable[[], PostgresStore]) -> None:
    reference = SQLiteStore(":memory:")
    reference.migrate()
    try:
        expected = drive(reference)
    finally:
        reference.close()
    actual = drive(connect())
    assert len(actual) == len(expected)
    for got, want in zip(actual, expected, strict=True):
        assert got == want, got[0]


# -- a frozen holder (issue 15, item 2) ---------------------------------------------------


def test_sessions_carry_guards_derived_from_the_lease(dsn: str) -> None:
    store = PostgresStore(dsn, lease_seconds=4)
    try:
        with store._tx() as db:  # the session's own settings
            shown = {
                name: db.execute(f"SHOW {name}").fetchone()[name]  # type: ignore[index]
                for name in (
                    "statement_timeout",
                    "lock_timeout",
                    "idle_in_transaction_session_timeout",
                )
            }
    finally:
        store.close()
    assert shown == {
        "statement_timeout": "4s",
        "lock_timeout": "4s",
        "idle_in_transaction_session_timeout": "2s",
    }
    # TCP keepalives and tcp_user_timeout are the client's side (libpq) of the same
    # bound: a black-holed link is given up instead of waited on forever.
    params = conninfo_to_dict(store._named("probe"))
    assert params["keepalives"] == "1" and params["tcp_user_timeout"] == "2000"


def test_a_node_frozen_inside_a_transaction_loses_its_locks_within_the_lease(dsn: str) -> None:
    """A node stopped (SIGSTOP) while its transaction holds a task's row lock: the server
    ends that idle-in-transaction session, so another node's verb on the task goes
    through instead of waiting for as long as the freeze lasts."""
    frozen = PostgresStore(dsn, lease_seconds=2)
    frozen.migrate()
    healthy = PostgresStore(dsn, lease_seconds=2)
    try:
        task = healthy.enqueue(
            new_task("held"), default_timeout=DEFAULT_TIMEOUT, default_retry=DEFAULT_RETRY, now=T0
        )
        held = frozen._connection()  # a verb caught half-way
        held.execute("SELECT id FROM tasks WHERE id = %s FOR UPDATE", (task.id,))
        # ... and its node freezes here: nothing more is sent on `held`.
        cancelled = healthy.request_cancel(task.id, now=T0 + 1)
        assert cancelled is not None and cancelled.status is TaskStatus.CANCELLED
        with pytest.raises(psycopg.errors.IdleInTransactionSessionTimeout):
            held.execute("SELECT 1")
    finally:
        frozen.close()
        healthy.close()
