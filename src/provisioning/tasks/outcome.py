"""How an attempt of a task ended: the contract's exit code, error and result."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .status import AttemptStatus


@dataclass(frozen=True)
class Outcome:
    """How an attempt ended, as the executor saw it."""

    status: AttemptStatus
    exit_code: int | None = None
    error: str | None = None
    result: Any = None
    has_result: bool = False
