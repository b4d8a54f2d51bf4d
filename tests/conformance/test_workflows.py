"""The workflow verbs on every backend, each case with its expected state written out."""

from __future__ import annotations

from provisioning.orchestrator.store import Store
from provisioning.tasks import AttemptStatus, WorkflowStatus
from tests.conformance.workflow_helpers import (
    DEFAULTS,
    T0,
    Driver,
    Op,
    create,
    errors,
    state,
    undo_steps,
)

CHAIN = {"a": Op(), "b": Op(("a",)), "c": Op(("b",))}
DIAMOND = {"r": Op(), "x": Op(("r",)), "y": Op(("r",)), "j": Op(("x", "y"))}
FAILED = AttemptStatus.FAILED


def test_create_persists_every_step_blocked_behind_its_dependencies(store: Store) -> None:
    wf = create(store, CHAIN)
    assert wf.status is WorkflowStatus.QUEUED
    assert (wf.tasks_total, wf.tasks_open, wf.created_at, wf.started_at) == (3, 3, T0, None)
    assert state(store, wf.id) == {
        "status": "queued",
        "phase": "run",
        "open": 3,
        "completed": 0,
        "failed": 0,
        "steps_completed": 0,
        "steps": {"a": "ready", "b": "blocked", "c": "blocked"},
        "tasks": {"a": "pending", "b": "blocked", "c": "blocked"},
    }


def test_steps_keep_their_order_kind_and_dependencies(store: Store) -> None:
    wf = create(store, DIAMOND)
    steps = store.workflow_steps(wf.id)
    assert [(s.step_id, s.kind, s.position, s.depends_on, s.total) for s in steps] == [
        ("r", "run", 0, (), 1),
        ("x", "run", 1, ("r",), 1),
        ("y", "run", 2, ("r",), 1),
        ("j", "run", 3, ("x", "y"), 1),
    ]
    assert [s.waiting_on for s in steps] == [0, 1, 1, 2]


def test_the_first_claim_starts_the_workflow(store: Store) -> None:
    wf = create(store, CHAIN)
    run = Driver(store)
    assert run.claim() == ["a"]
    started = store.get_workflow(wf.id)
    assert started is not None
    assert (started.status, started.started_at) == (WorkflowStatus.RUNNING, T0 + 1)
    assert run.claim() == []  # b waits for a


def test_a_completed_step_releases_only_its_dependents(store: Store) -> None:
    wf = create(store, CHAIN)
    run = Driver(store)
    assert run.run() == ["a"]
    assert state(store, wf.id) == {
        "status": "running",
        "phase": "run",
        "open": 2,
        "completed": 1,
        "failed": 0,
        "steps_completed": 1,
        "steps": {"a": "completed", "b": "ready", "c": "blocked"},
        "tasks": {"a": "completed", "b": "pending", "c": "blocked"},
    }
    checkpoint = store.get_workflow(wf.id)
    assert checkpoint is not None and checkpoint.checkpoint_at == T0 + 2


def test_a_chain_runs_to_completion(store: Store) -> None:
    wf = create(store, CHAIN)
    run = Driver(store)
    assert [run.run(), run.run(), run.run(), run.run()] == [["a"], ["b"], ["c"], []]
    done = store.get_workflow(wf.id)
    assert done is not None
    assert (done.status, done.completed_at, done.tasks_open) == (
        WorkflowStatus.COMPLETED,
        T0 + 6,
        0,
    )
    assert state(store, wf.id)["steps"] == {"a": "completed", "b": "completed", "c": "completed"}


def test_the_last_task_returns_the_new_workflow_status(store: Store) -> None:
    create(store, {"a": Op(), "b": Op(("a",))})
    run = Driver(store)
    run.claim()
    first = run.end("a")
    assert first.workflow_status is None  # the workflow goes on
    run.claim()
    last = run.end("b")
    assert last.workflow_status is WorkflowStatus.COMPLETED


def test_a_fan_out_step_completes_when_every_item_has(store: Store) -> None:
    wf = create(store, {"fan": Op(items=3), "after": Op(("fan",))})
    run = Driver(store)
    assert run.claim() == ["fan[0]", "fan[1]", "fan[2]"]
    run.end("fan[0]")
    run.end("fan[1]")
    assert state(store, wf.id)["steps"] == {"fan": "ready", "after": "blocked"}
    run.end("fan[2]")
    assert state(store, wf.id)["steps"] == {"fan": "completed", "after": "ready"}
    assert store.workflow_steps(wf.id)[0].completed == 3


def test_a_join_waits_for_both_branches(store: Store) -> None:
    wf = create(store, DIAMOND)
    run = Driver(store)
    run.run()
    assert run.claim() == ["x", "y"]
    run.end("x")
    assert state(store, wf.id)["tasks"]["j"] == "blocked"
    run.end("y")
    assert state(store, wf.id)["tasks"]["j"] == "pending"


def test_parallel_limit_caps_the_running_tasks_of_a_workflow(store: Store) -> None:
    create(store, {"fan": Op(items=5)}, parallel_limit=2)
    run = Driver(store)
    assert run.claim() == ["fan[0]", "fan[1]"]
    assert run.claim() == []
    run.end("fan[0]")
    assert run.claim() == ["fan[2]"]


def test_a_failed_step_stops_the_workflow_and_skips_what_did_not_start(store: Store) -> None:
    wf = create(store, CHAIN)
    run = Driver(store)
    run.run({"a": FAILED})
    assert state(store, wf.id) == {
        "status": "failed",
        "phase": "run",
        "open": 0,
        "completed": 0,
        "failed": 1,
        "steps_completed": 0,
        "steps": {"a": "failed", "b": "skipped", "c": "skipped"},
        "tasks": {"a": "failed", "b": "skipped", "c": "skipped"},
    }
    failed = store.get_workflow(wf.id)
    assert failed is not None
    assert (failed.error, failed.failure) == ("step a failed: a failed", "fail")
    assert errors(store, wf.id)["b"] == "not started: step a failed"


def test_a_failure_lets_running_siblings_finish_first(store: Store) -> None:
    wf = create(store, {"x": Op(), "y": Op(), "z": Op(("x", "y"))})
    run = Driver(store)
    assert run.claim() == ["x", "y"]
    run.end("x", FAILED)
    assert state(store, wf.id)["status"] == "running"
    assert state(store, wf.id)["tasks"] == {"x": "failed", "y": "running", "z": "skipped"}
    moved = run.end("y")
    assert moved.workflow_status is WorkflowStatus.FAILED
    assert state(store, wf.id)["steps"] == {"x": "failed", "y": "completed", "z": "skipped"}


def test_continue_skips_only_the_dependents_of_the_failed_step(store: Store) -> None:
    ops = {
        "bad": Op(on_failure="continue"),
        "child": Op(("bad",)),
        "grandchild": Op(("child",)),
        "other": Op(),
        "after_other": Op(("other",)),
    }
    wf = create(store, ops)
    run = Driver(store)
    assert run.run({"bad": FAILED}) == ["bad", "other"]
    assert run.run() == ["after_other"]
    assert state(store, wf.id) == {
        "status": "failed",
        "phase": "run",
        "open": 0,
        "completed": 2,
        "failed": 1,
        "steps_completed": 2,
        "steps": {
            "bad": "failed",
            "child": "skipped",
            "grandchild": "skipped",
            "other": "completed",
            "after_other": "completed",
        },
        "tasks": {
            "bad": "failed",
            "child": "skipped",
            "grandchild": "skipped",
            "other": "completed",
            "after_other": "completed",
        },
    }
    assert errors(store, wf.id)["grandchild"] == "skipped: it depends on failed step bad"
    ended = store.get_workflow(wf.id)
    assert ended is not None and (ended.error, ended.failure) == (
        "step bad failed: bad failed",
        None,
    )


def test_a_timed_out_task_fails_its_step(store: Store) -> None:
    wf = create(store, {"slow": Op()})
    Driver(store).run({"slow": AttemptStatus.TIMED_OUT})
    assert state(store, wf.id)["status"] == "failed"
    ended = store.get_workflow(wf.id)
    assert ended is not None and ended.error == "step slow timed_out: slow timed_out"


def test_on_failure_rollback_waits_for_the_rollback(store: Store) -> None:
    wf = create(store, {"a": Op(), "b": Op(("a",), on_failure="rollback")})
    run = Driver(store)
    run.run()
    run.run({"b": FAILED})
    pending = store.get_workflow(wf.id)
    assert pending is not None
    assert (pending.status, pending.completed_at, pending.failure) == (
        WorkflowStatus.ROLLBACK_PENDING,
        None,
        "rollback",
    )
    assert [w.id for w in store.workflows_in(WorkflowStatus.ROLLBACK_PENDING)] == [wf.id]


def test_request_rollback_only_of_a_finished_run(store: Store) -> None:
    wf = create(store, {"a": Op()})
    run = Driver(store)
    run.claim()
    still = store.request_rollback(wf.id)
    assert still is not None and still.status is WorkflowStatus.RUNNING
    run.end("a")
    marked = store.request_rollback(wf.id)
    assert marked is not None and marked.status is WorkflowStatus.ROLLBACK_PENDING
    assert store.request_rollback("no-such-workflow") is None


def test_begin_undo_runs_the_undo_steps_in_their_order(store: Store) -> None:
    wf = create(store, {"a": Op(), "b": Op(("a",))})
    run = Driver(store)
    run.run()
    run.run()
    store.request_rollback(wf.id)
    undo = undo_steps(store, wf.id, [("b", ()), ("a", ("b",))])
    started = store.begin_undo(wf.id, undo, now=run.tick(), **DEFAULTS)
    assert started is not None
    assert (started.phase, started.status, started.tasks_total, started.tasks_open) == (
        "undo",
        WorkflowStatus.ROLLING_BACK,
        4,
        2,
    )
    assert state(store, wf.id)["steps"] == {
        "a": "completed",
        "b": "completed",
        "undo:b": "ready",
        "undo:a": "blocked",
    }
    assert run.run() == ["undo:b"]
    assert run.run() == ["undo:a"]
    ended = store.get_workflow(wf.id)
    assert ended is not None and ended.status is WorkflowStatus.ROLLED_BACK


def test_begin_undo_only_once_and_only_when_pending(store: Store) -> None:
    wf = create(store, {"a": Op()})
    run = Driver(store)
    run.run()
    assert store.begin_undo(wf.id, [], now=run.tick(), **DEFAULTS) is None
    store.request_rollback(wf.id)
    undo = undo_steps(store, wf.id, [("a", ())])
    assert store.begin_undo(wf.id, undo, now=run.tick(), **DEFAULTS) is not None
    assert store.begin_undo(wf.id, undo, now=run.tick(), **DEFAULTS) is None
    assert state(store, wf.id)["tasks"] == {"a": "completed", "undo:a": "pending"}


def test_a_rollback_with_nothing_to_undo_ends_at_once(store: Store) -> None:
    wf = create(store, {"a": Op()})
    run = Driver(store)
    run.run()
    store.request_rollback(wf.id)
    ended = store.begin_undo(wf.id, [], now=run.tick(), **DEFAULTS)
    assert ended is not None
    assert (ended.phase, ended.status) == ("undo", WorkflowStatus.ROLLED_BACK)


def test_a_failed_undo_fails_the_rollback(store: Store) -> None:
    wf = create(store, {"a": Op()})
    run = Driver(store)
    run.run()
    store.request_rollback(wf.id)
    store.begin_undo(wf.id, undo_steps(store, wf.id, [("a", ())]), now=run.tick(), **DEFAULTS)
    run.run({"undo:a": FAILED})
    ended = store.get_workflow(wf.id)
    assert ended is not None
    assert (ended.status, ended.error) == (
        WorkflowStatus.ROLLBACK_FAILED,
        "step undo:a failed: undo:a failed",
    )


def test_cancel_of_a_queued_workflow_ends_it_at_once(store: Store) -> None:
    wf = create(store, CHAIN)
    found = store.cancel_workflow(wf.id, now=T0 + 5)
    assert found is not None
    cancelled, running = found
    assert (cancelled.status, cancelled.completed_at, running) == (
        WorkflowStatus.CANCELLED,
        T0 + 5,
        [],
    )
    assert state(store, wf.id)["tasks"] == {"a": "cancelled", "b": "cancelled", "c": "cancelled"}
    assert set(errors(store, wf.id).values()) == {"cancelled with its workflow"}


def test_cancel_flags_running_tasks_and_ends_when_they_do(store: Store) -> None:
    wf = create(store, {"x": Op(), "y": Op(), "z": Op(("x",))})
    run = Driver(store)
    run.claim()
    found = store.cancel_workflow(wf.id, now=run.tick())
    assert found is not None
    workflow, running = found
    ids = {t.name: t.id for t in store.workflow_tasks(wf.id)}
    assert workflow.status is WorkflowStatus.RUNNING
    assert running == [ids["x"], ids["y"]]
    assert store.heartbeat("node-a", now=run.tick(), lease_seconds=30) == {ids["x"], ids["y"]}
    run.end("x", AttemptStatus.CANCELLED)
    last = run.end("y", AttemptStatus.CANCELLED)
    assert last.workflow_status is WorkflowStatus.CANCELLED
    assert state(store, wf.id)["tasks"] == {"x": "cancelled", "y": "cancelled", "z": "cancelled"}


def test_cancel_of_a_finished_or_unknown_workflow(store: Store) -> None:
    wf = create(store, {"a": Op()})
    Driver(store).run()
    found = store.cancel_workflow(wf.id, now=T0 + 9)
    assert found is not None and found[0].status is WorkflowStatus.COMPLETED and found[1] == []
    assert store.cancel_workflow("no-such-workflow", now=T0) is None


def test_cancel_of_a_workflow_waiting_for_its_rollback(store: Store) -> None:
    wf = create(store, {"a": Op(on_failure="rollback")})
    Driver(store).run({"a": FAILED})
    found = store.cancel_workflow(wf.id, now=T0 + 9)
    assert found is not None
    assert (found[0].status, found[0].completed_at) == (WorkflowStatus.CANCELLED, T0 + 9)


def test_cancelling_one_blocked_task_fails_its_step(store: Store) -> None:
    wf = create(store, {"a": Op(), "b": Op(("a",))})
    b = next(t for t in store.workflow_tasks(wf.id) if t.name == "b")
    cancelled = store.request_cancel(b.id, now=T0 + 1)
    assert cancelled is not None and cancelled.status.value == "cancelled"
    assert state(store, wf.id)["steps"] == {"a": "skipped", "b": "failed"}
    assert state(store, wf.id)["tasks"] == {"a": "skipped", "b": "cancelled"}
    assert cancelled.workflow_status is WorkflowStatus.FAILED


def test_retry_resumes_from_the_checkpoint(store: Store) -> None:
    wf = create(store, CHAIN)
    run = Driver(store)
    run.run()
    run.run({"b": FAILED})
    reset = store.reset_workflow(wf.id, now=run.tick())
    assert reset is not None
    assert (reset.status, reset.error, reset.failure, reset.tasks_open, reset.tasks_failed) == (
        WorkflowStatus.RUNNING,
        None,
        None,
        2,
        0,
    )
    assert state(store, wf.id)["steps"] == {"a": "completed", "b": "ready", "c": "blocked"}
    assert state(store, wf.id)["tasks"] == {"a": "completed", "b": "pending", "c": "blocked"}
    assert {t.name: t.tries for t in store.workflow_tasks(wf.id)}["b"] == 0
    assert [run.run(), run.run()] == [["b"], ["c"]]
    done = store.get_workflow(wf.id)
    assert done is not None and (done.status, done.steps_completed) == (
        WorkflowStatus.COMPLETED,
        3,
    )


def test_retry_of_a_failed_rollback_reruns_the_undo_phase(store: Store) -> None:
    wf = create(store, {"a": Op()})
    run = Driver(store)
    run.run()
    store.request_rollback(wf.id)
    store.begin_undo(wf.id, undo_steps(store, wf.id, [("a", ())]), now=run.tick(), **DEFAULTS)
    run.run({"undo:a": FAILED})
    reset = store.reset_workflow(wf.id, now=run.tick())
    assert reset is not None and (reset.status, reset.phase) == (
        WorkflowStatus.ROLLING_BACK,
        "undo",
    )
    assert run.run() == ["undo:a"]
    ended = store.get_workflow(wf.id)
    assert ended is not None and ended.status is WorkflowStatus.ROLLED_BACK


def test_retry_of_an_unknown_workflow_is_none(store: Store) -> None:
    assert store.reset_workflow("no-such-workflow", now=T0) is None


def test_reads_of_a_workflow(store: Store) -> None:
    first = create(store, {"a": Op()}, name="first")
    second = create(store, {"a": Op(), "b": Op()}, name="second", now=T0 + 1)
    assert store.get_workflow("no-such-workflow") is None
    assert store.workflow_spec(second.id) == {"name": "second", "operations": ["a", "b"]}
    assert store.workflow_spec("no-such-workflow") is None
    page, total = store.list_workflows(status=None, limit=1, offset=0)
    assert ([w.name for w in page], total) == (["second"], 2)
    page, total = store.list_workflows(status=None, limit=5, offset=1)
    assert ([w.name for w in page], total) == (["first"], 2)
    page, total = store.list_workflows(status=WorkflowStatus.COMPLETED, limit=5, offset=0)
    assert (page, total) == ([], 0)
    assert [t.name for t in store.workflow_tasks(second.id)] == ["a", "b"]
    assert [t.workflow_id for t in store.workflow_tasks(first.id)] == [first.id]
    assert [w.id for w in store.workflows_in(WorkflowStatus.QUEUED)] == [first.id, second.id]
