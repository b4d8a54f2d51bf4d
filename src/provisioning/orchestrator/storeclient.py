"""Runs the blocking :class:`~.store.Store` verbs off the event loop.

One worker thread: SQLite has one writer anyway, and the order of verbs stays
the order of calls.
"""

from __future__ import annotations

import asyncio
import functools
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .store import Store


class StoreClient:
    """Awaitable access to a store from asyncio code."""

    def __init__(self, store: Store, workers: int = 1) -> None:
        self.store = store
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="store")

    async def call(self, verb: str, *args: Any, **kwargs: Any) -> Any:
        method = getattr(self.store, verb)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, functools.partial(method, *args, **kwargs))

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self.store.close()
