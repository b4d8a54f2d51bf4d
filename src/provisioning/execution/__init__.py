"""How a task runs: the only code that spawns processes (used by the daemon and the
direct mode alike). ``runners`` turns a run form into an argv and an environment,
``process`` runs it in its own process group and reads the line protocol live,
``procfs`` tells later whether a group still lives.

Names are loaded from their module on first use: the CLI checks a runner without
paying for asyncio and the process machinery it never starts."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .process import ProcessHooks, StopReason, ensure_dead, kill_group, run_process
    from .procfs import ProcessInfo
    from .runners import ATTEMPT_MARKER, Invocation, RunnerError, build_invocation, check_runner

_HOMES = {
    "ProcessHooks": "process",
    "StopReason": "process",
    "ensure_dead": "process",
    "kill_group": "process",
    "run_process": "process",
    "ProcessInfo": "procfs",
    "ATTEMPT_MARKER": "runners",
    "Invocation": "runners",
    "RunnerError": "runners",
    "build_invocation": "runners",
    "check_runner": "runners",
}

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


def __getattr__(name: str) -> object:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{home}"), name)
