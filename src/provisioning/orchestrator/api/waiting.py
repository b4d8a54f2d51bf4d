"""Long polls: ``?wait=SECONDS`` on a task or a workflow returns as soon as it has
finished (or when the seconds are up), so a client that waits for the end learns of
it within milliseconds instead of on its next poll."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

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


async def until_finished(
    bus: EventBus,
    *,
    kind: str,
    key: str,
    ident: str,
    read: Callable[[], Awaitable[T | None]],
    finished: Callable[[T], bool],
    seconds: float,
) -> T | None:
    """``read()`` again after each event about ``ident`` until ``finished`` holds or
    ``seconds`` pass. The listener is registered before the first read: a change
    between the two cannot be missed."""
    with bus.listening(frozenset({kind})) as events:
        found = await read()
        deadline = time.monotonic() + seconds
        while found is not None and not finished(found):
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
