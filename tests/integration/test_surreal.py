"""What only the SurrealDB backend has: the embedded folder and its owner process, the
revision check of its transactions, bound variables, URLs, and the workflow verbs
(checked step for step against the SQLite backend, which defines their rules).

The Store verbs themselves are covered by the conformance suite (``surrealdb`` param).
"""

from __future__ import annotations

import dataclasses
import random
import signal
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from provisioning.config.models import Settings, StorageBackend, StorageSection
from provisioning.drivers.surreal import Target
from provisioning.orchestrator.models import NewStep, Task
from provisioning.orchestrator.store import SQLiteStore, StoreError
from provisioning.orchestrator.store.surreal import SurrealStore, Tx, open_surreal
from provisioning.tasks import (
    AttemptStatus,
    Backoff,
    NewTask,
    Outcome,
    RetryPolicy,
    TaskStatus,
    WorkflowStatus,
)

T0 = 1_700_000_000.0
LEASE = 30.0
RETRY = RetryPolicy(max_attempts=3, backoff=Backoff.LINEAR, initial_delay=1, max_delay=5)
REPO = Path(__file__).resolve().parents[2]


def new_task(name: str = "task", **fields: Any) -> NewTask:
    return NewTask.model_validate({"name": name, "run": {"command": ["true"]}, **fields})


def enqueue(store: SurrealStore | SQLiteStore, name: str = "task", **fields: Any) -> Task:
    return store.enqueue(
        new_task(name, **fields), default_timeout=60.0, default_retry=RETRY, now=T0
    )


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return tmp_path / "surreal"


@pytest.fixture
def store(folder: Path) -> Iterator[SurrealStore]:
    handle = SurrealStore(folder)
    handle.migrate()
    yield handle
    handle.close()


def run_child(code: str) -> subprocess.CompletedProcess[str]:
    """Run Python code in a new process (the project on its path)."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


# -- the embedded folder and its owner ----------------------------------------------------


class TestEmbeddedFolder:
    def test_another_process_finds_the_data_after_close(self, folder: Path) -> None:
        first = SurrealStore(folder)
        first.migrate()
        task = enqueue(first, "kept", params={"k": [1, 2]})
        claim = first.claim("node-a", 1, now=T0, lease_seconds=LEASE)[0]
        first.append_logs(task.id, claim.attempt, [("stdout", "hello", T0)])
        first.close()

        child = run_child(
            f"""
            from provisioning.orchestrator.store.surreal import SurrealStore
            store = SurrealStore({str(folder)!r})
            print(store.migrate())
            task = store.get({task.id!r})
            print(task.name, task.status.value, task.params, task.attempt)
            print([line.line for line in store.logs({task.id!r})])
            store.close()
            """
        )
        assert child.returncode == 0, child.stderr
        assert child.stdout.splitlines() == ["1", "kept running {'k': [1, 2]} 1", "['hello']"]

    def test_an_acknowledged_write_survives_the_process_being_killed(self, folder: Path) -> None:
        child = run_child(
            f"""
            import os, signal, sys
            from provisioning.tasks import NewTask, RetryPolicy
            from provisioning.orchestrator.store.surreal import SurrealStore
            store = SurrealStore({str(folder)!r})
            store.migrate()
            task = store.enqueue(
                NewTask.model_validate({{"name": "acked", "run": {{"command": ["true"]}}}}),
                default_timeout=60.0, default_retry=RetryPolicy(), now=1.0,
            )
            print(task.id, flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
            """
        )
        assert child.returncode == -signal.SIGKILL, child.stderr
        task_id = child.stdout.strip()
        reopened = SurrealStore(folder)
        try:
            reopened.migrate()
            found = reopened.get(task_id)
            assert found is not None
            assert (found.name, found.status) == ("acked", TaskStatus.PENDING)
            # The dead owner's lock went with it: this process owns the folder now.
            assert reopened.claim("node-a", 5, now=T0, lease_seconds=LEASE)[0].task.id == task_id
        finally:
            reopened.close()

    def test_a_second_process_is_refused_while_one_owns_the_folder(
        self, store: SurrealStore, folder: Path
    ) -> None:
        child = run_child(
            f"""
            from provisioning.orchestrator.store import StoreError
            from provisioning.orchestrator.store.surreal import SurrealStore
            try:
                SurrealStore({str(folder)!r})
            except StoreError as exc:
                print(exc)
            else:
                print("opened")
            """
        )
        assert child.returncode == 0, child.stderr
        message = child.stdout.strip()
        assert message.startswith(f"the SurrealDB store {folder} is in use by process ")
        assert "one process owns it" in message
        store.close()
        # Once the owner let go, another process may open it.
        again = run_child(
            f"""
            from provisioning.orchestrator.store.surreal import SurrealStore
            store = SurrealStore({str(folder)!r})
            print(store.migrate())
            store.close()
            """
        )
        assert (again.returncode, again.stdout.strip()) == (0, "1"), again.stderr

    def test_handles_of_one_process_share_one_engine(self, folder: Path) -> None:
        first = SurrealStore(folder)
        second = SurrealStore(folder)
        try:
            first.migrate()
            second.migrate()
            task = enqueue(first)
            assert second.get(task.id) == task
            claim = second.claim("node-b", 1, now=T0, lease_seconds=LEASE)[0]
            first.close()
            # The other handle goes on; the closed one refuses clearly.
            assert second.get(task.id) == claim.task
            with pytest.raises(StoreError, match="closed"):
                first.get(task.id)
        finally:
            first.close()
            second.close()

    def test_meta_names_the_folder(self, store: SurrealStore, folder: Path) -> None:
        assert store.meta() == {
            "backend": "surrealdb",
            "url": f"surrealkv://{folder}",
            "path": str(folder),
            "schema_version": 1,
        }

    def test_a_verb_before_migrate_says_so(self) -> None:
        handle = SurrealStore("mem://")
        try:
            with pytest.raises(StoreError, match="migrate"):
                enqueue(handle)
        finally:
            handle.close()


# -- transactions -------------------------------------------------------------------------


class TestTransactions:
    def test_a_failed_transaction_applies_nothing(
        self, store: SurrealStore, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        task = enqueue(store)
        claim = store.claim("node-a", 1, now=T0, lease_seconds=LEASE)[0]
        before = (store.get(task.id), store.attempts(task.id))
        script = Tx.script

        def failing(tx: Tx) -> tuple[str, dict[str, Any]]:
            sql, params = script(tx)
            return sql.replace(
                "COMMIT TRANSACTION;", "THROW 'disk on fire';\nCOMMIT TRANSACTION;"
            ), params

        monkeypatch.setattr(Tx, "script", failing)
        with pytest.raises(StoreError, match="disk on fire"):
            store.finish(task.id, claim.attempt, Outcome(AttemptStatus.COMPLETED), now=T0 + 1)
        monkeypatch.undo()
        assert (store.get(task.id), store.attempts(task.id)) == before
        # The handle is still usable, with its counters reloaded.
        done = store.finish(task.id, claim.attempt, Outcome(AttemptStatus.COMPLETED), now=T0 + 2)
        assert done is not None
        assert done.status is TaskStatus.COMPLETED
        assert enqueue(store, "next").seq == task.seq + 1

    def test_a_write_in_between_makes_the_verb_run_again_on_fresh_data(
        self, store: SurrealStore, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        first = enqueue(store, "first")
        pick = SurrealStore._pick_ready
        calls = 0

        def meddling(self: SurrealStore, limit: int, now: float) -> list[dict[str, Any]]:
            # Between this verb's reads and its commit, another client claims "first".
            nonlocal calls
            calls += 1
            picked = pick(self, limit, now)
            if calls == 1:
                self._query(
                    "UPDATE $id SET status = 'running', owner = 'intruder';"
                    " UPDATE meta:state SET rev += 1;",
                    id=picked[0]["id"],
                )
            return picked

        second = enqueue(store, "second")
        monkeypatch.setattr(SurrealStore, "_pick_ready", meddling)
        claims = store.claim("node-a", 1, now=T0, lease_seconds=LEASE)
        assert calls == 2
        assert [c.task.id for c in claims] == [second.id]
        assert store.attempts(first.id) == []
        intruded = store.get(first.id)
        assert intruded is not None
        assert intruded.owner == "intruder"

    def test_sequences_come_from_the_counter_record(self, store: SurrealStore) -> None:
        tasks = [enqueue(store, f"t{i}") for i in range(3)]
        assert [t.seq for t in tasks] == [1, 2, 3]
        state = store._query("SELECT * OMIT id FROM ONLY meta:state")[-1]
        assert state["task_seq"] == 3
        assert state["rev"] == 3


# -- values are bound, never formatted into SurrealQL -----------------------------------


class TestBoundValues:
    HOSTILE: ClassVar[list[str]] = [
        "'; DELETE task; --",
        '"; REMOVE TABLE task; "',
        "⟩; DELETE task; ⟨",
        "$tx_rev",
        "task:⟨x⟩",
    ]

    def test_hostile_text_round_trips_and_harms_nothing(self, store: SurrealStore) -> None:
        keep = enqueue(store, "keep")
        for text in self.HOSTILE:
            task = enqueue(store, text, params={text: text})
            assert store.get(task.id) == task
            assert store.get(text) is None
            assert store.request_cancel(text, now=T0) is None
            claim = store.claim(text, 1, now=T0, lease_seconds=LEASE)[0]
            store.append_logs(claim.task.id, claim.attempt, [(text, text, T0)])
            assert [ln.line for ln in store.logs(claim.task.id)] == [text]
            done = store.finish(
                claim.task.id,
                claim.attempt,
                Outcome(AttemptStatus.FAILED, error=text, result=text, has_result=True),
                now=T0,
            )
            assert done is not None
            assert (done.error, done.result, done.owner) == (text, text, None)
        assert store.get(keep.id) is not None
        assert store.counts()["failed"] == len(self.HOSTILE)

    def test_a_nul_character_is_stored_as_a_replacement_character(
        self, store: SurrealStore
    ) -> None:
        task = enqueue(store, params={"nul": "a\x00b"})
        claim = store.claim("node-a", 1, now=T0, lease_seconds=LEASE)[0]
        store.append_logs(task.id, claim.attempt, [("stdout", "a\x00b", T0)])
        assert [ln.line for ln in store.logs(task.id)] == ["a\ufffdb"]
        # JSON documents keep it exactly (JSON escapes it).
        found = store.get(task.id)
        assert found is not None
        assert found.params == {"nul": "a\x00b"}


# -- locations ----------------------------------------------------------------------------


def _settings(tmp_path: Path, dsn: str = "") -> Settings:
    return Settings(
        storage=StorageSection(
            backend=StorageBackend.SURREALDB, data_dir=str(tmp_path / "data"), dsn=dsn
        )
    )


class TestLocations:
    def test_open_surreal_uses_a_folder_in_data_dir(self, tmp_path: Path) -> None:
        store = open_surreal(_settings(tmp_path))
        try:
            assert store.meta()["path"] == str(tmp_path / "data" / "surreal")
            assert store.meta()["schema_version"] == 1
            assert enqueue(store).seq == 1
        finally:
            store.close()

    def test_open_surreal_refuses_a_dsn_that_is_not_a_server_url(self, tmp_path: Path) -> None:
        with pytest.raises(StoreError, match=r"ws://host:8000"):
            open_surreal(_settings(tmp_path, "postgresql://db/x"))

    def test_an_unreachable_server_is_a_clear_error(self, tmp_path: Path) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        with pytest.raises(StoreError, match=rf"cannot open SurrealDB at ws://127\.0\.0\.1:{port}"):
            open_surreal(_settings(tmp_path, f"ws://root:secret@127.0.0.1:{port}"))

    def test_server_urls_carry_credentials_namespace_and_database(self) -> None:
        target = Target.parse("wss://ada:p%40ss@db.example:8000/rpc?ns=n1&db=d1")
        assert (target.kind, target.url, target.display) == (
            "ws",
            "wss://db.example:8000",
            "wss://db.example:8000",
        )
        assert (target.username, target.password) == ("ada", "p@ss")
        assert (target.namespace, target.database) == ("n1", "d1")

    def test_unknown_schemes_are_refused(self) -> None:
        with pytest.raises(StoreError, match="unsupported SurrealDB location"):
            SurrealStore("rocksdb:///tmp/x")


# -- workflows: the SQLite backend's rules, step for step -----------------------------------


def _plain(value: Any, *drop: str) -> Any:
    fields = dataclasses.asdict(value)
    for name in drop:
        fields.pop(name, None)
    return fields


class Twins:
    """The same workflow driven on SQLite and on SurrealDB; every answer and the whole
    state after each verb must be the same (ids apart)."""

    def __init__(self, surreal: SurrealStore) -> None:
        self.sqlite = SQLiteStore(":memory:")
        self.sqlite.migrate()
        self.surreal = surreal
        self.ids: dict[str, str] = {}  # workflow id on SQLite -> on SurrealDB
        self.now = T0

    def close(self) -> None:
        self.sqlite.close()

    def tick(self) -> float:
        self.now += 1
        return self.now

    def state(self, store: SQLiteStore | SurrealStore, workflow_id: str) -> dict[str, Any]:
        workflow = store.get_workflow(workflow_id)
        tasks = store.workflow_tasks(workflow_id)
        return {
            "workflow": None if workflow is None else _plain(workflow, "id"),
            "steps": [_plain(s, "workflow_id") for s in store.workflow_steps(workflow_id)],
            "tasks": [_plain(t, "id", "workflow_id") for t in tasks],
            "attempts": [[_plain(a, "task_id") for a in store.attempts(t.id)] for t in tasks],
            "counts": store.counts(),
            "rollback_pending": [
                w.name for w in store.workflows_in(WorkflowStatus.ROLLBACK_PENDING)
            ],
            "spec": store.workflow_spec(workflow_id),
        }

    def check(self, workflow_id: str) -> dict[str, Any]:
        left = self.state(self.sqlite, workflow_id)
        right = self.state(self.surreal, self.ids[workflow_id])
        assert right == left
        return left

    def task_ids(self, workflow_id: str, key: tuple[str | None, int | None]) -> tuple[str, str]:
        def find(store: SQLiteStore | SurrealStore, wf: str) -> str:
            [task] = [t for t in store.workflow_tasks(wf) if (t.step_id, t.item) == key]
            return task.id

        return find(self.sqlite, workflow_id), find(self.surreal, self.ids[workflow_id])

    def same(self, left: Any, right: Any, *drop: str) -> Any:
        """Two answers, the same but for ids."""
        if left is None or right is None:
            assert left is None and right is None
            return None
        assert _plain(right, *drop) == _plain(left, *drop)
        return left

    def create(self, steps: list[NewStep], *, parallel_limit: int) -> str:
        kwargs: dict[str, Any] = {
            "name": "flow",
            "version": "1.0",
            "spec": {"name": "flow", "operations": [s.step_id for s in steps], "ü": [1.5, None]},
            "priority": "normal",
            "parallel_limit": parallel_limit,
            "rollback_enabled": True,
            "steps": steps,
            "default_timeout": 60.0,
            "default_retry": RETRY,
            "now": self.tick(),
        }
        left = self.sqlite.create_workflow(**kwargs)
        right = self.surreal.create_workflow(**kwargs)
        self.same(left, right, "id")
        self.ids[left.id] = right.id
        return left.id

    def claim(self, limit: int) -> list[tuple[str | None, int | None]]:
        now = self.tick()
        left = self.sqlite.claim("node", limit, now=now, lease_seconds=LEASE)
        right = self.surreal.claim("node", limit, now=now, lease_seconds=LEASE)
        assert [(c.task.step_id, c.task.item, c.attempt) for c in right] == [
            (c.task.step_id, c.task.item, c.attempt) for c in left
        ]
        for a, b in zip(left, right, strict=True):
            self.same(a.task, b.task, "id", "workflow_id")
        return [(c.task.step_id, c.task.item) for c in left]


def _random_steps(rng: random.Random, kind: str = "run") -> list[NewStep]:
    steps: list[NewStep] = []
    for position in range(rng.randint(1, 5)):
        earlier = [s.step_id for s in steps]
        depends = tuple(rng.sample(earlier, rng.randint(0, min(2, len(earlier)))))
        items = rng.randint(1, 3)
        steps.append(
            NewStep(
                step_id=f"s{position}",
                kind=kind,
                position=position,
                layer=position,
                on_failure=rng.choice(["fail", "continue", "rollback"]),
                depends_on=depends,
                tasks=tuple(
                    new_task(f"s{position}-{i}", priority=rng.choice(["low", "normal", "high"]))
                    for i in range(items)
                ),
            )
        )
    return steps


def _undo_steps(twins: Twins, workflow_id: str) -> list[NewStep]:
    """Undo the completed run steps, dependents first (as the engine plans it)."""
    steps = twins.sqlite.workflow_steps(workflow_id)
    done = {s.step_id for s in steps if s.kind == "run" and s.status == "completed"}
    undo = []
    for position, step in enumerate(s for s in steps if s.step_id in done):
        after = [
            f"undo-{d.step_id}" for d in steps if step.step_id in d.depends_on and d.step_id in done
        ]
        undo.append(
            NewStep(
                step_id=f"undo-{step.step_id}",
                kind="undo",
                position=position,
                layer=0,
                on_failure="fail",
                depends_on=tuple(after),
                tasks=(new_task(f"undo-{step.step_id}"),),
            )
        )
    return undo


OUTCOMES = [
    ("completed", 6),
    ("failed", 2),
    ("retry", 2),
    ("interrupted", 1),
    ("timed_out", 1),
    ("cancel_task", 1),
    ("cancel_workflow", 1),
]


def _drive(twins: Twins, rng: random.Random) -> set[str]:
    """Run one random workflow to its end on both stores; the statuses it went through."""
    seen: set[str] = set()
    workflow_id = twins.create(_random_steps(rng), parallel_limit=rng.randint(1, 3))
    twins.check(workflow_id)
    rounds = 0
    while rounds < 80:
        rounds += 1
        state = twins.check(workflow_id)
        status = WorkflowStatus(state["workflow"]["status"])
        seen.add(status.value)
        if status.finished:
            if status in (WorkflowStatus.COMPLETED, WorkflowStatus.ROLLED_BACK) or rounds > 60:
                return seen
            if status is WorkflowStatus.ROLLBACK_FAILED or rng.random() < 0.5:
                twins.same(
                    twins.sqlite.reset_workflow(workflow_id, now=twins.tick()),
                    twins.surreal.reset_workflow(twins.ids[workflow_id], now=twins.now),
                    "id",
                )
            else:
                twins.same(
                    twins.sqlite.request_rollback(workflow_id),
                    twins.surreal.request_rollback(twins.ids[workflow_id]),
                    "id",
                )
            continue
        if status is WorkflowStatus.ROLLBACK_PENDING:
            undo = _undo_steps(twins, workflow_id)
            kwargs: dict[str, Any] = {
                "default_timeout": 60.0,
                "default_retry": RETRY,
                "now": twins.tick(),
            }
            twins.same(
                twins.sqlite.begin_undo(workflow_id, undo, **kwargs),
                twins.surreal.begin_undo(twins.ids[workflow_id], undo, **kwargs),
                "id",
            )
            # A repeated call changes nothing.
            assert twins.surreal.begin_undo(twins.ids[workflow_id], undo, **kwargs) is None
            continue
        running = [
            (t["step_id"], t["item"], t["attempt"])
            for t in state["tasks"]
            if t["status"] == "running"
        ]
        if not running or (len(running) < 3 and rng.random() < 0.4):
            twins.claim(rng.randint(1, 3))
            continue
        step_id, item, attempt = rng.choice(running)
        left_id, right_id = twins.task_ids(workflow_id, (step_id, item))
        action = rng.choices([o for o, _ in OUTCOMES], [w for _, w in OUTCOMES])[0]
        now = twins.tick()
        if action == "cancel_task":
            twins.same(
                twins.sqlite.request_cancel(left_id, now=now),
                twins.surreal.request_cancel(right_id, now=now),
                "id",
                "workflow_id",
            )
            continue
        if action == "cancel_workflow":
            left = twins.sqlite.cancel_workflow(workflow_id, now=now)
            right = twins.surreal.cancel_workflow(twins.ids[workflow_id], now=now)
            assert left is not None and right is not None
            twins.same(left[0], right[0], "id")
            assert len(left[1]) == len(right[1])
            continue
        retry_at: float | None = None
        counts = True
        if action == "completed":
            outcome = Outcome(AttemptStatus.COMPLETED, 0, result={"n": rounds}, has_result=True)
        elif action == "retry":
            outcome, retry_at = Outcome(AttemptStatus.FAILED, 1, error="flaky"), now
        elif action == "interrupted":
            outcome, retry_at, counts = Outcome(AttemptStatus.INTERRUPTED, error="stop"), now, False
        else:
            outcome = Outcome(AttemptStatus(action), 2, error=f"it {action}")
        twins.same(
            twins.sqlite.finish(
                left_id, attempt, outcome, now=now, retry_at=retry_at, counts=counts
            ),
            twins.surreal.finish(
                right_id, attempt, outcome, now=now, retry_at=retry_at, counts=counts
            ),
            "id",
            "workflow_id",
        )
        # A stale attempt changes nothing on either.
        assert twins.surreal.finish(right_id, attempt, outcome, now=now) is None
    return seen


# The statuses each seed's workflows went through (a cache: a seed not run yet is run).
_SEEN: dict[int, set[str]] = {}
SEEDS = range(12)


def _drive_seed(seed: int) -> set[str]:
    rng = random.Random(seed)
    surreal = SurrealStore("mem://")
    surreal.migrate()
    twins = Twins(surreal)
    seen: set[str] = set()
    try:
        for _ in range(3):
            seen |= _drive(twins, rng)
        # Listing sees the same workflows, newest first.
        left, left_total = twins.sqlite.list_workflows(status=None, limit=2, offset=1)
        right, right_total = surreal.list_workflows(status=None, limit=2, offset=1)
        assert right_total == left_total == 3
        assert [_plain(w, "id") for w in right] == [_plain(w, "id") for w in left]
    finally:
        twins.close()
        surreal.close()
    _SEEN[seed] = seen
    return seen


class TestWorkflowsMatchSQLite:
    @pytest.mark.parametrize("seed", SEEDS)
    def test_random_workflows_go_the_same_way(self, seed: int) -> None:
        _drive_seed(seed)

    def test_the_random_workflows_reach_every_ending(self) -> None:
        """The drive above is worth something only if it reaches every branch."""
        seen: set[str] = set()
        for seed in SEEDS:
            seen |= _SEEN[seed] if seed in _SEEN else _drive_seed(seed)
        assert seen >= {status.value for status in WorkflowStatus} - {"queued"}

    def test_on_the_embedded_folder_too(self, store: SurrealStore) -> None:
        twins = Twins(store)
        try:
            _drive(twins, random.Random(99))
        finally:
            twins.close()

    def test_parallel_limit_holds_across_claims(self, store: SurrealStore) -> None:
        step = NewStep(
            step_id="wide",
            kind="run",
            position=0,
            layer=0,
            on_failure="fail",
            depends_on=(),
            tasks=tuple(new_task(f"i{i}") for i in range(6)),
        )
        workflow = store.create_workflow(
            name="wide",
            version="1",
            spec={},
            priority="normal",
            parallel_limit=2,
            rollback_enabled=False,
            steps=[step],
            default_timeout=60.0,
            default_retry=RETRY,
            now=T0,
        )
        enqueue(store, "loose")
        claims = store.claim("node-a", 10, now=T0, lease_seconds=LEASE)
        assert sorted(c.task.name for c in claims) == ["i0", "i1", "loose"]
        assert store.claim("node-a", 10, now=T0, lease_seconds=LEASE) == []
        first = next(c for c in claims if c.task.name == "i0")
        store.finish(first.task.id, first.attempt, Outcome(AttemptStatus.COMPLETED), now=T0)
        assert [c.task.name for c in store.claim("node-a", 10, now=T0, lease_seconds=LEASE)] == [
            "i2"
        ]
        running = store.get_workflow(workflow.id)
        assert running is not None
        assert (running.status, running.started_at) == (WorkflowStatus.RUNNING, T0)
        assert store.workflow_spec(workflow.id) == {}
