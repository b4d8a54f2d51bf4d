"""The workflow rules, written once and pure: state + event -> the changes to make.

No I/O and no SQL here. Every store calls these functions inside the transaction
that persists an event, and applies what they return; the engine calls them to
plan a rollback and to check a command. See :mod:`.rules` (progression, failure
policy, phase end, retry, cancel) and :mod:`.rollback` (the undo order).
"""

from __future__ import annotations

from .claims import UNLIMITED, pick_ready
from .rollback import OperationNode, UndoStep, undo_order
from .rules import (
    FAILED_STEP,
    OPEN_TASK,
    TERMINAL_TASK,
    Failure,
    FailureChange,
    Phase,
    ResetStep,
    StepStatus,
    TaskEnding,
    can_request_rollback,
    can_retry,
    cancel_ends_at_once,
    completed_at,
    counted,
    dependents_to_skip,
    initial_status,
    on_step_failed,
    phase_end,
    ready_after_release,
    reset_step,
    running_status,
    step_completes,
    task_ending,
    terminal_status,
)

__all__ = [
    "FAILED_STEP",
    "OPEN_TASK",
    "TERMINAL_TASK",
    "UNLIMITED",
    "Failure",
    "FailureChange",
    "OperationNode",
    "Phase",
    "ResetStep",
    "StepStatus",
    "TaskEnding",
    "UndoStep",
    "can_request_rollback",
    "can_retry",
    "cancel_ends_at_once",
    "completed_at",
    "counted",
    "dependents_to_skip",
    "initial_status",
    "on_step_failed",
    "phase_end",
    "pick_ready",
    "ready_after_release",
    "reset_step",
    "running_status",
    "step_completes",
    "task_ending",
    "terminal_status",
    "undo_order",
]
