"""How a task runs: the only code that spawns processes (used by the daemon and the
direct mode alike). ``runners`` turns a run form into an argv and an environment,
``process`` runs it in its own process group and reads the line protocol live,
``procfs`` tells later whether a group still lives."""

from __future__ import annotations

from .process import ProcessHooks, StopReason, ensure_dead, kill_group, run_process
from .procfs import ProcessInfo
from .runners import ATTEMPT_MARKER, Invocation, RunnerError, build_invocation, check_runner

__all__ = [
    "ATTEMPT_MARKER",
    "Invocation",
    "ProcessHooks",
    "ProcessInfo",
    "RunnerError",
    "StopReason",
    "build_invocation",
    "check_runner",
    "ensure_dead",
    "kill_group",
    "run_process",
]
