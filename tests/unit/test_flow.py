"""The workflow rules on their own: each case states the input and the expected result."""

from __future__ import annotations

import pytest

from provisioning.orchestrator.flow import (
    Failure,
    FailureChange,
    OperationNode,
    ResetStep,
    StepStatus,
    TaskEnding,
    UndoStep,
    can_request_rollback,
    can_retry,
    cancel_ends_at_once,
    completed_at,
    counted,
    dependents_to_skip,
    initial_status,
    on_step_failed,
    phase_end,
    pick_ready,
    ready_after_release,
    reset_step,
    running_status,
    step_completes,
    task_ending,
    terminal_status,
    undo_order,
)
from provisioning.tasks import AttemptStatus, TaskStatus, WorkflowStatus

W = WorkflowStatus


@pytest.mark.parametrize(
    ("attempt", "task"),
    [
        (AttemptStatus.COMPLETED, TaskStatus.COMPLETED),
        (AttemptStatus.FAILED, TaskStatus.FAILED),
        (AttemptStatus.CANCELLED, TaskStatus.CANCELLED),
        (AttemptStatus.TIMED_OUT, TaskStatus.TIMED_OUT),
        (AttemptStatus.INTERRUPTED, TaskStatus.FAILED),
        (AttemptStatus.LOST, TaskStatus.FAILED),
    ],
)
def test_terminal_status(attempt: AttemptStatus, task: TaskStatus) -> None:
    assert terminal_status(attempt) is task


@pytest.mark.parametrize(
    ("waiting", "expected"),
    [
        (0, (StepStatus.READY, TaskStatus.PENDING)),
        (1, (StepStatus.BLOCKED, TaskStatus.BLOCKED)),
        (7, (StepStatus.BLOCKED, TaskStatus.BLOCKED)),
    ],
)
def test_initial_status(waiting: int, expected: tuple[StepStatus, TaskStatus]) -> None:
    assert initial_status(waiting) == expected


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (TaskStatus.COMPLETED, (1, 0)),
        (TaskStatus.FAILED, (0, 1)),
        (TaskStatus.TIMED_OUT, (0, 1)),
        (TaskStatus.CANCELLED, (0, 1)),
        (TaskStatus.SKIPPED, (0, 0)),
    ],
)
def test_counted(status: TaskStatus, expected: tuple[int, int]) -> None:
    assert counted(status) == expected


@pytest.mark.parametrize(
    ("completed", "total", "failed", "expected"),
    [(3, 3, 0, True), (2, 3, 0, False), (2, 3, 1, False), (3, 4, 1, False), (0, 0, 0, True)],
)
def test_step_completes(completed: int, total: int, failed: int, expected: bool) -> None:
    assert step_completes(completed, total, failed) is expected


@pytest.mark.parametrize(
    ("waiting", "status", "failure", "expected"),
    [
        (0, "blocked", None, True),
        (1, "blocked", None, False),
        (0, "ready", None, False),
        (0, "skipped", None, False),
        (0, "blocked", "fail", False),
        (0, "blocked", "cancel", False),
    ],
)
def test_ready_after_release(
    waiting: int, status: str, failure: str | None, expected: bool
) -> None:
    assert ready_after_release(waiting, status, failure) is expected


@pytest.mark.parametrize(
    ("policy", "phase", "expected"),
    [
        (
            "stop",
            "run",
            FailureChange(
                "step s1 failed: boom", Failure.FAIL, "not started: step s1 failed", None
            ),
        ),
        (
            "rollback",
            "run",
            FailureChange(
                "step s1 failed: boom", Failure.ROLLBACK, "not started: step s1 failed", None
            ),
        ),
        (
            # A failure while undoing cannot start another rollback.
            "rollback",
            "undo",
            FailureChange(
                "step s1 failed: boom", Failure.FAIL, "not started: step s1 failed", None
            ),
        ),
        (
            "continue",
            "run",
            FailureChange(
                "step s1 failed: boom", None, None, "skipped: it depends on failed step s1"
            ),
        ),
    ],
)
def test_on_step_failed(policy: str, phase: str, expected: FailureChange) -> None:
    change = on_step_failed(
        step_id="s1", on_failure=policy, phase=phase, task_status="failed", task_error="boom"
    )
    assert change == expected


def test_on_step_failed_without_an_error_text() -> None:
    change = on_step_failed(
        step_id="s", on_failure="stop", phase="run", task_status="timed_out", task_error=None
    )
    assert change.error == "step s timed_out:"


def test_dependents_to_skip_breadth_first_once_each() -> None:
    edges = {"a": ["b", "c"], "b": ["d"], "c": ["d", "e"], "d": ["f"]}
    assert dependents_to_skip("a", lambda s: edges.get(s, [])) == ["b", "c", "d", "e", "f"]
    assert dependents_to_skip("c", lambda s: edges.get(s, [])) == ["d", "e", "f"]
    assert dependents_to_skip("f", lambda s: edges.get(s, [])) == []


@pytest.mark.parametrize(
    ("phase", "failure", "failed_steps", "expected"),
    [
        ("run", None, 0, W.COMPLETED),
        ("run", None, 2, W.FAILED),  # on_failure = continue: the phase ran out, with failures
        ("run", "fail", 1, W.FAILED),
        ("run", "fail", 0, W.FAILED),
        ("run", "rollback", 1, W.ROLLBACK_PENDING),
        ("run", "cancel", 0, W.CANCELLED),
        ("run", "cancel", 3, W.CANCELLED),
        ("undo", None, 0, W.ROLLED_BACK),
        ("undo", None, 1, W.ROLLBACK_FAILED),
        ("undo", "fail", 1, W.ROLLBACK_FAILED),
    ],
)
def test_phase_end(phase: str, failure: str | None, failed_steps: int, expected: W) -> None:
    assert phase_end(phase, failure, failed_steps) is expected


@pytest.mark.parametrize(
    ("status", "expected"), [(W.ROLLBACK_PENDING, None), (W.FAILED, 5.0), (W.COMPLETED, 5.0)]
)
def test_completed_at(status: W, expected: float | None) -> None:
    assert completed_at(status, 5.0) == expected


@pytest.mark.parametrize(
    ("depends_on", "done", "expected"),
    [
        ((), set(), ResetStep(StepStatus.READY, 0)),
        (("a", "b"), {"a", "b"}, ResetStep(StepStatus.READY, 0)),
        (("a", "b"), {"a"}, ResetStep(StepStatus.BLOCKED, 1)),
        (("a", "b"), set(), ResetStep(StepStatus.BLOCKED, 2)),
    ],
)
def test_reset_step_resumes_from_the_checkpoint(
    depends_on: tuple[str, ...], done: set[str], expected: ResetStep
) -> None:
    assert reset_step(depends_on, done) == expected


@pytest.mark.parametrize(("phase", "expected"), [("run", W.RUNNING), ("undo", W.ROLLING_BACK)])
def test_running_status(phase: str, expected: W) -> None:
    assert running_status(phase) is expected


@pytest.mark.parametrize(
    ("status", "retry", "rollback_in_run", "cancel_at_once"),
    [
        (W.QUEUED, False, False, False),
        (W.RUNNING, False, False, False),
        (W.COMPLETED, False, True, False),
        (W.FAILED, True, True, False),
        (W.CANCELLED, True, True, False),
        (W.ROLLBACK_PENDING, False, False, True),
        (W.ROLLING_BACK, False, False, False),
        (W.ROLLED_BACK, False, False, False),
        (W.ROLLBACK_FAILED, True, False, False),
    ],
)
def test_commands_by_status(
    status: W, retry: bool, rollback_in_run: bool, cancel_at_once: bool
) -> None:
    assert can_retry(status) is retry
    assert can_request_rollback(status, "run") is rollback_in_run
    assert can_request_rollback(status, "undo") is False
    assert cancel_ends_at_once(status) is cancel_at_once


def nodes(*spec: tuple[str, tuple[str, ...], bool]) -> list[OperationNode]:
    return [OperationNode(op_id, deps, undo) for op_id, deps, undo in spec]


@pytest.mark.parametrize(
    ("operations", "done", "expected"),
    [
        (  # a chain: undone from its end
            nodes(("a", (), True), ("b", ("a",), True), ("c", ("b",), True)),
            {"a", "b", "c"},
            [UndoStep("c", 0, 0, ()), UndoStep("b", 1, 1, ("c",)), UndoStep("a", 2, 2, ("b",))],
        ),
        (  # only what completed is undone
            nodes(("a", (), True), ("b", ("a",), True), ("c", ("b",), True)),
            {"a"},
            [UndoStep("a", 0, 0, ())],
        ),
        (  # an operation without an undo is passed through
            nodes(("a", (), True), ("b", ("a",), False), ("c", ("b",), True)),
            {"a", "b", "c"},
            [UndoStep("c", 0, 0, ()), UndoStep("a", 1, 1, ("c",))],
        ),
        (  # independent operations: one layer, later operations first
            nodes(("a", (), True), ("b", (), True), ("c", (), True)),
            {"a", "b", "c"},
            [UndoStep("c", 0, 0, ()), UndoStep("b", 1, 0, ()), UndoStep("a", 2, 0, ())],
        ),
        (  # a diamond: the join first, the root last
            nodes(
                ("r", (), True), ("x", ("r",), True), ("y", ("r",), True), ("j", ("x", "y"), True)
            ),
            {"r", "x", "y", "j"},
            [
                UndoStep("j", 0, 0, ()),
                UndoStep("y", 1, 1, ("j",)),
                UndoStep("x", 2, 1, ("j",)),
                UndoStep("r", 3, 2, ("x", "y")),
            ],
        ),
        (nodes(("a", (), False)), {"a"}, []),
    ],
)
def test_undo_order(
    operations: list[OperationNode], done: set[str], expected: list[UndoStep]
) -> None:
    assert undo_order(operations, done) == expected


@pytest.mark.parametrize(
    ("attempt", "retry_at", "counts", "expected"),
    [
        (AttemptStatus.FAILED, 5.0, True, TaskEnding(TaskStatus.PENDING, run_after=5.0)),
        (AttemptStatus.LOST, 5.0, False, TaskEnding(TaskStatus.PENDING, 5.0, tries_back=1)),
        (
            AttemptStatus.COMPLETED,
            None,
            True,
            TaskEnding(TaskStatus.COMPLETED, completed_at=1.0, progress=100),
        ),
        (AttemptStatus.TIMED_OUT, None, True, TaskEnding(TaskStatus.TIMED_OUT, completed_at=1.0)),
        (AttemptStatus.INTERRUPTED, None, False, TaskEnding(TaskStatus.FAILED, completed_at=1.0)),
    ],
)
def test_task_ending(
    attempt: AttemptStatus, retry_at: float | None, counts: bool, expected: TaskEnding
) -> None:
    assert task_ending(attempt, now=1.0, retry_at=retry_at, counts=counts) == expected


# Pending tasks in pick order: (key, workflow); w1 allows 2 at a time, w2 has 1 running of 1.
_READY = [(1, "w1"), (2, "w2"), (3, None), (4, "w1"), (5, "w1"), (6, "ghost"), (7, None)]


@pytest.mark.parametrize(
    ("limit", "expected"),
    [(1, [1]), (3, [1, 3, 4]), (5, [1, 3, 4, 6, 7]), (9, [1, 3, 4, 6, 7])],
)
def test_pick_ready_keeps_each_workflows_parallel_limit(limit: int, expected: list[int]) -> None:
    def candidates(full: list[str], picked: list[int], scan: int) -> list[tuple[int, str | None]]:
        ready = [(k, w) for k, w in _READY if w not in full and k not in picked]
        return ready[:scan]

    room = {"w2": 0}
    assert pick_ready(limit, room, candidates, lambda ids: {"w1": 2, "w2": 1}) == expected
