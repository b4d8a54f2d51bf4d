"""Waiting for a task or workflow to end by following the event stream: the state is
read once after subscribing, then again only when an event concerns it, so ``--wait``
returns as soon as the end is published instead of on the next tick of a poll."""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

from ..client import ClientError

V = TypeVar("V")
Event = Mapping[str, Any]

# How long to wait for the stream to say it is connected before reading the state anyway.
CONNECT_SECONDS = 5.0
# A quiet stream is checked against the state this often (an event lost to a reconnect
# of the daemon's side must not leave the wait hanging).
QUIET_SECONDS = 2.0
# Where no stream can be had (an old orchestrator, a proxy that buffers), a plain poll.
POLL_SECONDS = 0.2


def _listen(
    stream: Callable[[], Iterator[dict[str, Any]]], events: queue.Queue[Event | None]
) -> None:
    try:
        for event in stream():
            events.put(event)
    except ClientError:
        pass
    finally:
        events.put(None)


def wait_for_end(
    stream: Callable[[], Iterator[dict[str, Any]]],
    fetch: Callable[[], V],
    ended: Callable[[V], bool],
    concerns: Callable[[Event], bool],
    seen: Callable[[V], None] | None = None,
) -> V:
    """Subscribe to ``stream``, then ``fetch`` the state; fetch again on each event that
    ``concerns`` it (handing each state to ``seen``) until ``ended``. Subscribing first
    means nothing that happens between the read and the subscription is missed."""
    events: queue.Queue[Event | None] = queue.Queue()
    listener = threading.Thread(target=_listen, args=(stream, events), daemon=True)
    listener.start()
    alive = True
    with contextlib.suppress(queue.Empty):
        alive = events.get(timeout=CONNECT_SECONDS) is not None
    state = fetch()
    while True:
        if seen is not None:
            seen(state)
        if ended(state):
            return state
        following = _next_state(events, fetch, concerns, alive)
        if following is None:
            alive = False
            following = fetch()
        state = following


def _next_state(
    events: queue.Queue[Event | None],
    fetch: Callable[[], V],
    concerns: Callable[[Event], bool],
    alive: bool,
) -> V | None:
    """The state after the next event that concerns it (or after a quiet spell);
    ``None`` when the stream has ended."""
    if not alive:
        with contextlib.suppress(queue.Empty):
            events.get(timeout=POLL_SECONDS)
        return fetch()
    while True:
        try:
            event = events.get(timeout=QUIET_SECONDS)
        except queue.Empty:
            return fetch()
        if event is None:
            return None
        if concerns(event):
            return fetch()
