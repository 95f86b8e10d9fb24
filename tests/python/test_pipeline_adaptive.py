"""tg.Pipeline(timeout=tg.AdaptiveTimeout(...)): each attempt's limit learnt from the attempts
before it, sync and asyncio, on a ManualClock (latencies in virtual time; a stall is cut by
asyncio's own timer at the learnt limit, a few tens of milliseconds)."""

from __future__ import annotations

import asyncio
from typing import Awaitable, Callable

import pytest

import tailguard as tg
from tailguard.testing import ManualClock


def run(coro: Awaitable[object]) -> object:
    async def main() -> object:
        return await coro

    return asyncio.run(main())


def taking(clock: ManualClock, seconds: float) -> Callable[[], Awaitable[float]]:
    """An attempt that takes ``seconds`` of virtual time."""

    async def attempt() -> float:
        clock.advance(seconds)
        await asyncio.sleep(0)
        return seconds

    return attempt


def adaptive(clock: ManualClock, floor: float = 0.005, ceiling: float = 1.0) -> tg.AdaptiveTimeout:
    return tg.AdaptiveTimeout(0.99, factor=2.0, floor=floor, ceiling=ceiling, min_samples=20, clock=clock)


def test_each_attempts_limit_is_learnt_and_a_stall_is_cut_there() -> None:
    clock = ManualClock()
    timeout = adaptive(clock)
    pipeline = tg.Pipeline(
        retry=tg.retry(attempts=2, backoff=tg.Backoff.constant(0.0)), timeout=timeout, clock=clock
    )
    assert pipeline.adaptive_timeout is timeout and pipeline.timeout is None
    assert timeout.timeout() == pytest.approx(0.005), "the floor until 20 attempts are known"
    for _ in range(20):
        assert run(pipeline.acall(taking(clock, 0.004))) == 0.004
    clock.advance(1.0)
    # p99 × 2 of 4 ms attempts.
    assert timeout.timeout() == pytest.approx(0.008, rel=0.02)
    calls: list[int] = []

    async def first_stalls() -> int:
        calls.append(1)
        if len(calls) == 1:
            await asyncio.sleep(30)  # real time: cut by asyncio's timer at the learnt 8 ms
        clock.advance(0.004)
        return len(calls)

    assert run(pipeline.acall(first_stalls)) == 2
    assert (timeout.completed, timeout.timed_out) == (21, 1)
    assert timeout.timeout_rate == pytest.approx(1 / 22)


def test_floor_and_ceiling_bound_the_learnt_limit() -> None:
    clock = ManualClock()
    timeout = adaptive(clock, floor=0.02, ceiling=0.05)
    pipeline = tg.Pipeline(timeout=timeout, clock=clock)
    for _ in range(20):
        run(pipeline.acall(taking(clock, 0.001)))
    clock.advance(1.0)
    assert timeout.timeout() == pytest.approx(0.02), "fast attempts: held at the floor"
    # Slower than the limit: each cut (in virtual time, on its first step) and recorded at
    # 0.2 s, a lower bound.
    for _ in range(100):
        with pytest.raises(tg.AttemptTimeoutError):
            run(pipeline.acall(taking(clock, 0.2)))
    clock.advance(1.0)
    assert timeout.timeout() == pytest.approx(0.05), "slow attempts: held at the ceiling"
    with pytest.raises(tg.AttemptTimeoutError):
        run(pipeline.acall(lambda: asyncio.sleep(30)))
    assert timeout.timed_out == 101


def test_the_false_timeout_rate_comes_from_the_fates_reported() -> None:
    clock = ManualClock()
    timeout = adaptive(clock, floor=0.02)
    pipeline = tg.Pipeline(timeout=timeout, clock=clock)

    def stall(would_succeed: bool) -> Callable[[], Awaitable[None]]:
        async def attempt() -> None:
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                # The caller learns later whether the cut attempt would have answered.
                timeout.record_late(would_succeed)
                raise

        return attempt

    for would_succeed in (True, False, False, True):
        with pytest.raises(tg.AttemptTimeoutError):
            run(pipeline.acall(stall(would_succeed)))
    for _ in range(4):
        run(pipeline.acall(taking(clock, 0.001)))
    assert (timeout.completed, timeout.timed_out) == (4, 4)
    assert timeout.timeout_rate == pytest.approx(0.5)
    assert timeout.false_timeout_rate == pytest.approx(0.5)
    assert timeout.false_timeout_share == pytest.approx(0.25)


def test_a_deadline_cut_and_a_cancelled_call_are_not_recorded() -> None:
    clock = ManualClock()
    timeout = adaptive(clock, floor=10.0, ceiling=10.0)
    pipeline = tg.Pipeline(
        retry=tg.retry(attempts=3), timeout=timeout, deadline=0.03, clock=clock
    )
    with pytest.raises(tg.DeadlineExceededError) as caught:
        run(pipeline.acall(lambda: asyncio.sleep(30)))
    assert caught.value.reason == "reached"

    async def cancel_mid_attempt() -> None:
        task = asyncio.ensure_future(pipeline.acall(lambda: asyncio.sleep(30)))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(cancel_mid_attempt())
    assert (timeout.completed, timeout.timed_out) == (0, 0)
    # Still consistent: the next call is recorded as usual.
    run(pipeline.acall(taking(clock, 0.001)))
    assert (timeout.completed, timeout.timed_out) == (1, 0)


def test_the_decorator_reads_and_feeds_the_adaptive_timeout() -> None:
    clock = ManualClock()
    timeout = adaptive(clock, floor=0.02)
    pipeline = tg.Pipeline(retry=tg.retry(attempts=2, on=ConnectionError), timeout=timeout, clock=clock)
    failures = [ConnectionError("once")]

    @pipeline
    async def fetch(key: str) -> str:
        clock.advance(0.001)
        await asyncio.sleep(0)
        if failures:
            raise failures.pop()
        return key

    assert run(fetch("k")) == "k"
    assert (timeout.completed, timeout.timed_out) == (2, 0), "the failure and the success"

    @pipeline
    async def stalls() -> None:
        await asyncio.sleep(30)

    with pytest.raises(tg.RetryError):
        run(stalls())
    assert timeout.timed_out == 2


def test_a_sync_call_feeds_it_and_reads_its_limit() -> None:
    clock = ManualClock()
    timeout = adaptive(clock, floor=0.02)
    pipeline = tg.Pipeline(
        retry=tg.retry(attempts=2, on=TimeoutError, backoff=tg.Backoff.constant(0.0)),
        timeout=timeout,
        clock=clock,
    )
    given: list[float] = []

    @pipeline
    def fetch(took: float) -> float:
        limit = pipeline.adaptive_timeout.timeout()  # type: ignore[union-attr]
        given.append(limit)
        clock.advance(min(took, limit))
        if took > limit:
            raise TimeoutError("the client gave up")  # the client's own timeout
        return took

    for _ in range(20):
        assert fetch(0.01) == 0.01
    clock.advance(1.0)
    assert timeout.timeout() == pytest.approx(0.02, rel=0.02)
    # A slow answer: the client's timeout cuts it at the learnt limit, counted as cut.
    with pytest.raises(tg.RetryError):
        fetch(0.5)
    assert (timeout.completed, timeout.timed_out) == (20, 2)
    assert given[-1] == pytest.approx(0.02, rel=0.02)
    assert pipeline.call(lambda: 1) == 1
    assert timeout.completed == 21


def test_the_adaptive_timeout_must_read_the_pipelines_clock() -> None:
    with pytest.raises(tg.ConfigError) as caught:
        tg.Pipeline(timeout=tg.AdaptiveTimeout(), clock=ManualClock())
    assert caught.value.parameter == "timeout"
    with pytest.raises(tg.ConfigError):
        tg.Pipeline(timeout=tg.AdaptiveTimeout(clock=ManualClock()))
    pipeline = tg.Pipeline(timeout=tg.AdaptiveTimeout())
    assert "AdaptiveTimeout(" in repr(pipeline)
