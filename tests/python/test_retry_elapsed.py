"""`RetryEvent.elapsed` and `RetryError.elapsed` count from the start of the call.

Every attempt below takes 0.25 s and the backoff waits 0.5 s, on a manual clock: the failures
happen 0.25, 1.0 and 1.75 s after the call started, so the hook sees [0.25, 1.0] and the error
says 1.75 (the last attempt included).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Callable

import pytest

import tailguard as tg
from tailguard.testing import ManualClock

HALF = tg.Backoff.constant(0.5, jitter="none")

# Settings that take each path through the loop: the fast path (state made at the first
# failure), a deadline or a budget (state made before the first attempt), a per-attempt timeout.
PATHS: dict[str, Callable[[ManualClock], dict[str, Any]]] = {
    "plain": lambda clock: {},
    "deadline": lambda clock: {"deadline": 100.0},
    "budget": lambda clock: {"budget": tg.RetryBudget(min_per_second=10, clock=clock)},
}


def policy(clock: ManualClock, events: list[tg.RetryEvent], **settings: Any) -> tg.Retry:
    return tg.Retry(
        attempts=3, backoff=HALF, clock=clock, on_retry=events.append, **settings
    )


@pytest.mark.parametrize("path", list(PATHS))
def test_sync_elapsed_counts_from_the_call_start(path: str) -> None:
    clock = ManualClock(start=100.0)
    events: list[tg.RetryEvent] = []
    retry = policy(clock, events, **PATHS[path](clock))

    def attempt() -> None:
        clock.advance(0.25)
        raise ConnectionError("slow and failing")

    with pytest.raises(tg.RetryError) as caught:
        retry.call(attempt)
    assert [e.elapsed for e in events] == [0.25, 1.0]
    assert caught.value.elapsed == 1.75
    assert "in 1.750s" in str(caught.value)


@pytest.mark.parametrize("path", [*PATHS, "timeout"])
def test_async_elapsed_counts_from_the_call_start(path: str) -> None:
    clock = ManualClock(start=100.0)
    events: list[tg.RetryEvent] = []
    settings = {"timeout": 100.0} if path == "timeout" else PATHS[path](clock)
    retry = policy(clock, events, **settings)

    @retry
    async def attempt() -> None:
        clock.advance(0.25)
        await asyncio.sleep(0)
        raise ConnectionError("slow and failing")

    with pytest.raises(tg.RetryError) as caught:
        asyncio.run(attempt())
    assert [e.elapsed for e in events] == [0.25, 1.0]
    assert caught.value.elapsed == 1.75


def test_sync_elapsed_on_the_real_clock_includes_every_attempt() -> None:
    # Two attempts of at least 0.1 s each, no wait between them: at least 0.2 s, at most what
    # the caller measured around the call.
    @tg.retry(attempts=2, backoff=tg.Backoff.constant(0.0, jitter="none"))
    def attempt() -> None:
        time.sleep(0.1)
        raise ConnectionError("slow and failing")

    started = time.monotonic()
    with pytest.raises(tg.RetryError) as caught:
        attempt()
    outside = time.monotonic() - started
    assert 0.2 <= caught.value.elapsed <= outside


def test_async_elapsed_on_the_real_clock_includes_every_attempt() -> None:
    @tg.retry(attempts=2, backoff=tg.Backoff.constant(0.0, jitter="none"))
    async def attempt() -> None:
        await asyncio.sleep(0.1)
        raise ConnectionError("slow and failing")

    async def timed() -> tuple[float, float]:
        started = time.monotonic()
        try:
            await attempt()
        except tg.RetryError as error:
            return error.elapsed, time.monotonic() - started
        raise AssertionError("the call did not fail")

    elapsed, outside = asyncio.run(timed())
    # asyncio.sleep may wake up to a clock tick early; allow that much.
    assert 0.19 <= elapsed <= outside
