"""In-process publish/subscribe of task changes, feeding the event stream."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import AsyncGenerator, Iterator
from dataclasses import dataclass, field
from typing import Any

QUEUE_SIZE = 10_000
# Recorded in the daemon's log (`orchestrator logs`): what happened, never parameters
# or output (those may hold user data).
LOGGED_KEYS = ("id", "task_id", "workflow_id", "name", "status", "attempt", "exit_code")
QUIET_EVENTS = frozenset({"progress", "log", "changed"})
log = logging.getLogger("provisioning.orchestrator.events")


@dataclass(frozen=True)
class Event:
    id: int
    kind: str  # "task" | "system"
    name: str  # e.g. "created", "started", "progress", "finished", "retrying"
    data: dict[str, Any]
    ts: float = field(default_factory=time.time)

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "type": self.kind, "event": self.name, "ts": self.ts, **self.data}


class _Subscriber:
    def __init__(self, kinds: frozenset[str] | None) -> None:
        self.kinds = kinds
        self.queue: asyncio.Queue[Event | None] = asyncio.Queue(QUEUE_SIZE)
        self.overflowed = False


class EventBus:
    """Fan-out of events to subscribers. A subscriber that falls too far behind is
    dropped (its stream ends) rather than slowing the scheduler down."""

    def __init__(self) -> None:
        self._subscribers: set[_Subscriber] = set()
        self._ids = itertools.count(1)

    def publish(self, kind: str, name: str, data: dict[str, Any]) -> None:
        if kind in ("task", "workflow") and name not in QUIET_EVENTS:
            fields = " ".join(f"{k}={data[k]}" for k in LOGGED_KEYS if data.get(k) is not None)
            log.info("%s %s %s", kind, name, fields)
        if not self._subscribers:
            return
        event = Event(next(self._ids), kind, name, data)
        for sub in list(self._subscribers):
            if sub.kinds is not None and kind not in sub.kinds:
                continue
            try:
                sub.queue.put_nowait(event)
            except asyncio.QueueFull:
                sub.overflowed = True
                self._subscribers.discard(sub)

    def subscribe(
        self, kinds: frozenset[str] | None = None, heartbeat: float = 15.0
    ) -> AsyncGenerator[Event | None, None]:
        """Events as they come; ``None`` every ``heartbeat`` seconds of silence. The
        subscription holds from this call on (not from the first read), so a stream that
        says "connected" before its first event misses nothing published after that."""
        sub = _Subscriber(kinds)
        self._subscribers.add(sub)
        return self._drain(sub, heartbeat)

    async def _drain(
        self, sub: _Subscriber, heartbeat: float
    ) -> AsyncGenerator[Event | None, None]:
        try:
            while not sub.overflowed or not sub.queue.empty():
                try:
                    event = await asyncio.wait_for(sub.queue.get(), heartbeat)
                except TimeoutError:
                    yield None
                    continue
                if event is None:
                    return
                yield event
        finally:
            self._subscribers.discard(sub)

    @contextlib.contextmanager
    def listening(self, kinds: frozenset[str]) -> Iterator[asyncio.Queue[Event | None]]:
        """A queue of the events published from now on (registered before this returns,
        so a read made after it cannot miss a change); ``None`` in it: the bus closed."""
        sub = _Subscriber(kinds)
        self._subscribers.add(sub)
        try:
            yield sub.queue
        finally:
            self._subscribers.discard(sub)

    def close(self) -> None:
        for sub in list(self._subscribers):
            try:
                sub.queue.put_nowait(None)
            except asyncio.QueueFull:
                sub.overflowed = True
        self._subscribers.clear()
