"""Long polls: ``?wait=SECONDS`` on a task or a workflow returns as soon as it has
finished (or when the seconds are up), so a client that waits for the end learns of
it within milliseconds instead of on its next poll."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Generic, TypeVar

from fastapi import Query

from ..events import EventBus

T = TypeVar("T")

MAX_WAIT_SECONDS = 300.0
Wait = Annotated[
    float,
    Query(
        ge=0,
        le=MAX_WAIT_SECONDS,
        description="seconds to hold the reply until it has finished (0: answer at once)",
    ),
]


@dataclass(frozen=True)
class Watch(Generic[T]):
    """What a long poll waits on: the events of ``kind`` (they name their record as
    ``{kind}_id``) and when a record of that kind has finished."""

    kind: str
    finished: Callable[[T], bool]

    async def until_finished(
        self, bus: EventBus, ident: str, read: Callable[[], Awaitable[T | None]], seconds: float
    ) -> T | None:
        """``read()`` again after each event about ``ident`` until it has finished or
        ``seconds`` pass. The listener is registered before the first read: a change
        between the two cannot be missed."""
        key = f"{self.kind}_id"
        with bus.listening(frozenset({self.kind})) as events:
            found = await read()
            deadline = time.monotonic() + seconds
            while found is not None and not self.finished(found):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    event = await asyncio.wait_for(events.get(), remaining)
                except TimeoutError:
                    break
                if event is None:  # the daemon is stopping
                    break
                if event.data.get(key) == ident:
                    found = await read()
            return found
