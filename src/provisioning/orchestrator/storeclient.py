"""Runs the blocking :class:`~.store.Store` verbs off the event loop, with group commit.

One worker thread takes every call queued since its last round and, when the
backend supports it, runs them in *one* transaction (each verb in its own
savepoint, so one failing verb undoes only itself). Callers are answered only
after that single commit, so "on disk before the reply" still holds while a
burst of submissions and task completions shares one fsync.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import queue
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

from . import metrics
from .store import Store
from .store.base import run_each
from .store.faults import StoreFull, StoreUnavailable, classify

P = ParamSpec("P")
T = TypeVar("T")

MAX_BATCH = 256
# Verbs that write: one of them succeeding means the store takes writes again.
_WRITES = frozenset(
    {
        "enqueue",
        "claim",
        "finish",
        "append_logs",
        "heartbeat",
        "record_progress",
        "record_process",
        "register_node",
        "request_cancel",
    }
)


@dataclass
class _Call:
    fn: Callable[[], Any]
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop
    verb: str = ""


def _settle(future: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if future.cancelled():
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)


_Answer = tuple[asyncio.Future[Any], bool, Any, str]


def _claims_first(answer: _Answer) -> bool:
    return answer[3] != "claim"


def _settle_all(answers: list[_Answer]) -> None:
    for future, ok, value, _ in answers:
        _settle(future, ok, value)


class StoreClient:
    """Awaitable access to a store from asyncio code."""

    def __init__(self, store: Store, deadline: float | None = None) -> None:
        self.store = store
        self.deadline = deadline
        self._calls: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._work, name="store", daemon=True)
        # When a write last failed for lack of space, and when one last succeeded.
        self.full_at = 0.0
        self.write_ok_at = 0.0
        # When a call last failed because the store could not be reached (or did not
        # answer in time), and when one last got an answer.
        self.unavailable_at = 0.0
        self.answered_at = 0.0
        self.unavailable_why = ""
        # Calls queued so far: a call sees the effects of every call with a lower number.
        self.queued = 0
        self._thread.start()

    @property
    def full(self) -> bool:
        """The last write that was tried failed for lack of space."""
        return self.full_at > self.write_ok_at

    @property
    def unavailable(self) -> bool:
        """The last call failed for want of the store, and none has been answered since."""
        return self.unavailable_at > self.answered_at

    async def run(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """``fn(*args, **kwargs)`` (a verb of :attr:`store`) on the store's thread, in the
        next group commit; its result once that commit is on disk. Past the deadline
        it fails as :class:`StoreUnavailable` (the verb may still run: every verb is
        safe to run again, and those that record outcomes are fenced)."""
        return await self.run_within(self.deadline, fn, *args, **kwargs)

    async def run_within(
        self, deadline: float | None, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """:meth:`run` with a deadline of its own (``None``: none)."""
        return await self._answer(self._put(fn, *args, **kwargs), fn.__name__, deadline)

    def queue(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Awaitable[T]:
        """:meth:`run`, queued *now*: ahead of every call made after this returns,
        whenever the result is awaited (a hook's write before the outcome it precedes)."""
        return self._answer(self._put(fn, *args, **kwargs), fn.__name__, self.deadline)

    def _put(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> asyncio.Future[T]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self.queued += 1
        self._calls.put(_Call(functools.partial(fn, *args, **kwargs), future, loop, fn.__name__))
        return future

    async def _answer(self, future: asyncio.Future[T], verb: str, deadline: float | None) -> T:
        if deadline is None:
            return await future
        try:
            return await asyncio.wait_for(future, deadline)
        except TimeoutError:
            why = f"store unavailable: {verb} got no answer within {deadline:g}s"
            self._mark_unavailable(why)
            raise StoreUnavailable(why) from None

    def _mark_unavailable(self, why: str) -> None:
        self.unavailable_at = time.monotonic()
        self.unavailable_why = why

    def _work(self) -> None:
        while True:
            first = self._calls.get()
            if first is None:
                return
            calls = [first]
            stop = False
            while len(calls) < MAX_BATCH:
                try:
                    more = self._calls.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                calls.append(more)
            began = time.perf_counter()
            try:
                outcomes = self._run(calls)
            except Exception as exc:  # The worker must outlive any failure of a round.
                outcomes = [(False, exc)] * len(calls)
            metrics.store_round(time.perf_counter() - began)
            # One wake-up of each event loop per round, not one per call: a round of a
            # busy node answers dozens of calls.
            answers: dict[asyncio.AbstractEventLoop, list[_Answer]]
            answers = {}
            for call, (ok, value) in zip(calls, outcomes, strict=True):
                if not ok:
                    value = classify(value)
                    if isinstance(value, StoreFull):
                        self.full_at = time.monotonic()
                    elif isinstance(value, StoreUnavailable):
                        self._mark_unavailable(str(value))
                    else:
                        self.answered_at = time.monotonic()
                else:
                    self.answered_at = time.monotonic()
                    if call.verb in _WRITES:
                        self.write_ok_at = time.monotonic()
                answers.setdefault(call.loop, []).append((call.future, ok, value, call.verb))
            for loop, answered in answers.items():
                # Claims first: the task a claim starts is what a chain waits for; the
                # bookkeeping after a finish (events, metrics) can come after it.
                answered.sort(key=_claims_first)
                # A loop that closed has nobody waiting for these answers.
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(_settle_all, answered)
            if stop:
                return

    def _run(self, calls: list[_Call]) -> list[tuple[bool, Any]]:
        if len(calls) == 1:
            return run_each([calls[0].fn])
        outcomes = self.store.run_batch([c.fn for c in calls])
        if all(not ok and isinstance(classify(value), StoreFull) for ok, value in outcomes):
            # The disk filled under the round and took all of it back: on their own, the
            # reads (which need no room) and the writes that still fit get their answer.
            return run_each([c.fn for c in calls])
        return outcomes

    def close(self) -> None:
        self._calls.put(None)
        self._thread.join()
        self.store.close()
