"""Retried calls keep nothing alive after they return: not the exceptions, not their frames.

Judged as shapes, not byte counts: memory that grows with the number of calls by anything like
the size of a failed attempt's locals is a leak; the bound allows a small fraction of it.
"""

from __future__ import annotations

import asyncio
import gc
import tracemalloc
import weakref
from typing import Awaitable, Callable, Iterator, Optional

import pytest

import tailguard as tg
from tailguard.testing import set_testing

PAYLOAD = 20_000  # bytes held as a local by every failing attempt


class Payload:
    """A large local of a failing frame; weakly referenceable so a test can see it freed."""

    def __init__(self) -> None:
        self.data = bytearray(PAYLOAD)


@pytest.fixture(autouse=True)
def _no_sleeps() -> Iterator[None]:
    with set_testing(True):
        yield


def async_service(
    payloads: list[weakref.ref[Payload]],
    *,
    fail: int,
    deadline: Optional[float] = None,
    timeout: Optional[float] = None,
) -> Callable[[], Awaitable[int]]:
    """An async function that fails `fail` times per call (then succeeds), each failing frame
    holding a fresh payload."""
    state = {"calls": 0}

    @tg.retry(attempts=3, deadline=deadline, timeout=timeout)
    async def call() -> int:
        state["calls"] += 1
        payload = Payload()
        payloads.append(weakref.ref(payload))
        if state["calls"] % (fail + 1) != 0:
            raise ConnectionError("flaky")
        return len(payload.data)

    return call


async def run_calls(call: Callable[[], Awaitable[int]], n: int) -> None:
    for _ in range(n):
        try:
            await call()
        except tg.RetryError:
            pass


@pytest.mark.parametrize(
    "settings",
    [{}, {"deadline": 60.0}, {"timeout": 60.0}],  # the fast path, and the full loop twice
    ids=["fast-path", "deadline", "timeout"],
)
@pytest.mark.parametrize("fail", [1, 5], ids=["retried-once", "gave-up"])
def test_async_retry_frees_failed_attempts_locals(
    fail: int, settings: dict[str, Optional[float]]
) -> None:
    # Without the collector: nothing a finished call touched may sit in a reference cycle.
    payloads: list[weakref.ref[Payload]] = []
    call = async_service(payloads, fail=fail, **settings)
    gc.collect()
    gc.disable()
    try:
        asyncio.run(run_calls(call, 20))
        alive = sum(ref() is not None for ref in payloads)
    finally:
        gc.enable()
    assert len(payloads) >= 20
    assert alive == 0, f"{alive} of {len(payloads)} failed attempts' locals are still alive"


def test_sync_retry_frees_failed_attempts_locals() -> None:
    payloads: list[weakref.ref[Payload]] = []
    state = {"calls": 0}

    @tg.retry(attempts=3)
    def call() -> int:
        state["calls"] += 1
        payload = Payload()
        payloads.append(weakref.ref(payload))
        if state["calls"] % 2:
            raise ConnectionError("flaky")
        return len(payload.data)

    gc.collect()
    gc.disable()
    try:
        for _ in range(20):
            call()
        alive = sum(ref() is not None for ref in payloads)
    finally:
        gc.enable()
    assert alive == 0


def growth_per_call(run: Callable[[int], None], calls: int) -> float:
    """Bytes still allocated per call after `calls` more calls, past a warm-up."""
    tracemalloc.start()
    try:
        run(200)  # warm-up: caches, interned strings, the event loop's first allocations
        gc.collect()
        before = tracemalloc.take_snapshot()
        run(calls)
        gc.collect()
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    grown = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    return grown / calls


@pytest.mark.parametrize("fail", [1, 5], ids=["retried-once", "gave-up"])
def test_async_retry_memory_does_not_grow_with_calls(fail: int) -> None:
    payloads: list[weakref.ref[Payload]] = []
    call = async_service(payloads, fail=fail)

    def run(n: int) -> None:
        asyncio.run(run_calls(call, n))
        payloads.clear()

    per_call = growth_per_call(run, 2_000)
    # A leak keeps at least one failed attempt's payload per call; allow 1 % of one.
    assert per_call < PAYLOAD / 100, f"memory grew by {per_call:.0f} bytes per call"


def test_sync_retry_memory_does_not_grow_with_calls() -> None:
    state = {"calls": 0}

    @tg.retry(attempts=3)
    def call() -> int:
        state["calls"] += 1
        payload = Payload()
        if state["calls"] % 2:
            raise ConnectionError("flaky")
        return len(payload.data)

    def run(n: int) -> None:
        for _ in range(n):
            call()

    per_call = growth_per_call(run, 2_000)
    assert per_call < PAYLOAD / 100, f"memory grew by {per_call:.0f} bytes per call"
