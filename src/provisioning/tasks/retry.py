"""How often and how soon a failed task is tried again."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field


class Strict(BaseModel):
    """A frozen contract record that refuses unknown keys."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Backoff(StrEnum):
    LINEAR = "linear"
    EXPONENTIAL = "exponential"


class RetryPolicy(Strict):
    """How often and how soon a failed task is tried again (the original platform's defaults)."""

    max_attempts: Annotated[int, Field(ge=1, le=100, strict=True)] = 3
    backoff: Backoff = Backoff.EXPONENTIAL
    initial_delay: Annotated[float, Field(ge=0, le=86_400, strict=True)] = 5
    max_delay: Annotated[float, Field(ge=0, le=86_400, strict=True)] = 300

    def delay_before(self, attempt: int) -> float:
        """Seconds to wait before ``attempt`` (2 is the first retry)."""
        retries = max(attempt - 1, 1)
        if self.backoff is Backoff.LINEAR:
            delay = self.initial_delay * retries
        else:
            # Past 2**64 every delay is capped anyway; a huge power would overflow a float.
            delay = self.initial_delay * (2 ** min(retries - 1, 64))
        return float(min(delay, self.max_delay))
