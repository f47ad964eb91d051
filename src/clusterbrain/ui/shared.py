"""Reads that every viewer of a page needs alike, done once and handed to all of them.

The overview's KPIs of a shift and a day take seconds for a few hundred machines; computed per
browser, every open overview (and every reload) started its own computation, they filled the
worker threads and the machine grid's quick reads waited behind them. Here one read per key runs
at a time, whoever asks while it runs waits for the same result, and a result stays good for
``max_age_s`` after it arrived.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

from nicegui import run

T = TypeVar("T")


class SharedReads:
    """Coalesced, briefly kept results of blocking reads, run on NiceGUI's I/O threads."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._kept: dict[Hashable, tuple[float, Any]] = {}
        self._running: dict[Hashable, asyncio.Future[Any]] = {}

    async def get(self, key: Hashable, max_age_s: float, read: Callable[[], T]) -> T | None:
        """The result of ``read()`` for ``key``: kept, running, or started now.

        ``None`` when the application is stopping (as ``run.io_bound`` gives it). A failed read
        is not kept: its error goes to every waiter, and the next call tries again.
        """
        kept = self._kept.get(key)
        if kept is not None and self._clock() - kept[0] < max_age_s:
            result: T = kept[1]
            return result
        running = self._running.get(key)
        if running is None:
            running = asyncio.ensure_future(run.io_bound(read))
            self._running[key] = running
            running.add_done_callback(lambda done: self._settle(key, done))
        # a viewer who leaves cancels its own wait, never the read the others wait for
        return await asyncio.shield(running)

    def _settle(self, key: Hashable, done: asyncio.Future[Any]) -> None:
        self._running.pop(key, None)
        if not done.cancelled() and done.exception() is None and done.result() is not None:
            self._kept[key] = (self._clock(), done.result())
