"""How an attempt of a task ended: the contract's exit code, error and result."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .status import AttemptStatus

# A handler exits with this code (EX_CONFIG of sysexits.h) for an error no retry can
# fix -- an unknown plan, a bad setting --: the task fails at once, its retries unused.
EXIT_PERMANENT = 78


@dataclass(frozen=True)
class Outcome:
    """How an attempt ended, as the executor saw it. ``permanent``: retrying cannot
    help (the program does not exist, the handler exited ``EXIT_PERMANENT``)."""

    status: AttemptStatus
    exit_code: int | None = None
    error: str | None = None
    result: Any = None
    has_result: bool = False
    permanent: bool = False
