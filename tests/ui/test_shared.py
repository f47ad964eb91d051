"""Reads shared by the viewers of a page: one read per key at a time, kept for a while."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from clusterbrain.ui.shared import SharedReads


def run_apart(scenario: Callable[[], Awaitable[None]]) -> None:
    """Run ``scenario`` on an event loop of its own thread (Playwright's may be running here)."""

    async def main() -> None:
        await scenario()

    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, main()).result()


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_viewers_asking_at_once_share_one_read_then_reuse_it_until_it_is_old() -> None:
    clock, calls, release = Clock(), [], threading.Event()

    def read() -> int:
        calls.append(1)
        release.wait(5)
        return len(calls)

    async def scenario() -> None:
        shared = SharedReads(clock)
        waiting = [asyncio.create_task(shared.get("kpis", 30, read)) for _ in range(5)]
        await asyncio.sleep(0.05)
        release.set()
        assert await asyncio.gather(*waiting) == [1] * 5
        clock.now += 29
        assert await shared.get("kpis", 30, read) == 1
        assert await shared.get("other", 30, read) == 2  # another key reads on its own
        clock.now += 2
        assert await shared.get("kpis", 30, read) == 3

    run_apart(scenario)
    assert len(calls) == 3


def test_a_viewer_leaving_does_not_cancel_the_read_the_others_wait_for() -> None:
    release = threading.Event()

    def read() -> str:
        release.wait(5)
        return "figures"

    async def scenario() -> None:
        shared = SharedReads()
        leaving = asyncio.create_task(shared.get("kpis", 30, read))
        staying = asyncio.create_task(shared.get("kpis", 30, read))
        await asyncio.sleep(0.05)
        leaving.cancel()
        release.set()
        assert await staying == "figures"
        with pytest.raises(asyncio.CancelledError):
            await leaving

    run_apart(scenario)


def test_a_failed_read_reaches_every_waiter_and_is_not_kept() -> None:
    outcomes = iter([RuntimeError("store unavailable"), "figures"])

    def read() -> str:
        outcome = next(outcomes)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    async def scenario() -> None:
        shared = SharedReads()
        with pytest.raises(RuntimeError, match="store unavailable"):
            await shared.get("kpis", 30, read)
        assert await shared.get("kpis", 30, read) == "figures"

    run_apart(scenario)
