"""The only code that spawns processes: runners build argv, ``process`` runs them."""

from __future__ import annotations

from .output import OutputLine, parse_line
from .process import ProcessHooks, run_process
from .runners import RunnerError, build_invocation, check_runner

__all__ = [
    "OutputLine",
    "ProcessHooks",
    "RunnerError",
    "build_invocation",
    "check_runner",
    "parse_line",
    "run_process",
]
