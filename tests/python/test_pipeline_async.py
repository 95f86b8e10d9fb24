"""tg.Pipeline, asyncio: attempt timeouts, the deadline cutting an attempt, the deadline
decisions in virtual time, cancellation releasing everything."""

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


def flaky(clock: ManualClock, plan: list[float], log: list[int]) -> Callable[[], Awaitable[int]]:
    """Attempt ``n`` moves the virtual clock by ``abs(plan[n - 1])`` and fails if negative."""

    async def attempt() -> int:
        log.append(len(log) + 1)
        took = plan[len(log) - 1]
        clock.advance(abs(took))
        await asyncio.sleep(0)
        if took < 0:
            raise ConnectionError(f"attempt {len(log)} failed")
        return len(log)

    return attempt


def test_an_async_call_through_every_layer() -> None:
    clock = ManualClock()
    breaker = tg.CircuitBreaker(clock=clock, minimum_calls=100)
    pipeline = tg.Pipeline(
        retry=tg.retry(on=ConnectionError, attempts=3, backoff=tg.Backoff.constant(0.1), clock=clock),
        breaker=breaker,
    )

    @pipeline
    async def fetch(key: str) -> str:
        await asyncio.sleep(0)
        return key.upper()

    assert run(fetch("k")) == "K"
    log: list[int] = []
    assert run(pipeline.acall(flaky(clock, [-0.01, 0.02], log))) == 2
    metrics = breaker.metrics()
    assert (metrics.calls, metrics.failures) == (3, 1)


def test_a_timed_out_attempt_is_a_retried_failure() -> None:
    breaker = tg.CircuitBreaker(minimum_calls=100)
    pipeline = tg.Pipeline(
        retry=tg.retry(attempts=2, backoff=tg.Backoff.constant(0.0)), breaker=breaker, timeout=0.05
    )
    calls: list[int] = []

    async def first_stalls() -> int:
        calls.append(1)
        if len(calls) == 1:
            await asyncio.sleep(30)
        return len(calls)

    assert run(pipeline.acall(first_stalls)) == 2
    assert breaker.metrics().failures == 1, "the timed-out attempt is a failure"

    def stalls() -> Awaitable[None]:
        return asyncio.sleep(30)

    with pytest.raises(tg.RetryError) as caught:
        run(pipeline.acall(stalls))
    assert isinstance(caught.value.__cause__, tg.AttemptTimeoutError)


def test_the_deadline_cuts_a_running_attempt_uncounted() -> None:
    breaker = tg.CircuitBreaker(half_open_calls=1)
    pipeline = tg.Pipeline(retry=tg.retry(attempts=5), breaker=breaker, deadline=0.05, timeout=10.0)
    with pytest.raises(tg.DeadlineExceededError) as caught:
        run(pipeline.acall(lambda: asyncio.sleep(30)))
    assert (caught.value.reason, caught.value.attempts) == ("reached", 1)
    assert breaker.metrics().calls == 0, "cut by the deadline: neither success nor failure"


def test_a_retry_is_not_started_when_less_time_is_left_than_predicted() -> None:
    clock = ManualClock()
    pipeline = tg.Pipeline(
        retry=tg.retry(attempts=5, backoff=tg.Backoff.constant(0.1), clock=clock),
        deadline=1.0,
        predict_floor=0.3,
    )
    log: list[int] = []
    with pytest.raises(tg.DeadlineExceededError) as caught:
        run(pipeline.acall(flaky(clock, [-0.2, -0.2, -0.2, 0.1], log)))
    assert (caught.value.reason, caught.value.attempts) == ("too_short", 3)
    assert caught.value.remaining == pytest.approx(0.1)
    assert log == [1, 2, 3]


def test_a_deadline_passed_is_refused_at_once() -> None:
    clock = ManualClock()
    pipeline = tg.Pipeline(clock=clock)
    ran: list[int] = []

    async def work() -> None:
        ran.append(1)

    async def main() -> None:
        async with pipeline.scope(0.5):
            clock.advance(0.5)
            with pytest.raises(tg.DeadlineExceededError) as caught:
                await pipeline.acall(work)
            assert caught.value.reason == "passed"

    asyncio.run(main())
    assert ran == []


def test_cancelling_a_call_releases_the_probe_and_the_retry() -> None:
    clock = ManualClock()
    breaker = tg.CircuitBreaker(
        clock=clock, window=2, minimum_calls=2, open_duration=10.0, half_open_calls=1
    )
    for _ in range(2):
        with pytest.raises(ConnectionError):
            breaker.call(lambda: (_ for _ in ()).throw(ConnectionError()))
    clock.advance(10.0)
    budget = tg.RetryBudget(1.0, min_per_second=0, clock=clock)
    pipeline = tg.Pipeline(retry=tg.retry(attempts=3, budget=budget, backoff=tg.Backoff.constant(0.0)), breaker=breaker)

    async def main() -> None:
        task = asyncio.ensure_future(pipeline.acall(lambda: asyncio.sleep(30)))
        await asyncio.sleep(0.01)
        assert breaker.metrics().probes_in_flight == 1
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert breaker.metrics().probes_in_flight == 0
    assert breaker.state == "half_open"
    assert pipeline.call(lambda: 1) == 1, "the probe slot is free again"


def test_the_decorator_times_only_attempts_that_wait_and_hands_failures_to_the_loop() -> None:
    breaker = tg.CircuitBreaker(minimum_calls=100)
    pipeline = tg.Pipeline(
        retry=tg.retry(attempts=2, backoff=tg.Backoff.constant(0.0)), breaker=breaker, timeout=0.05
    )
    calls: list[int] = []

    @pipeline
    async def fetch(key: str, *, stall: bool = True) -> str:
        calls.append(1)
        if stall and len(calls) == 1:
            await asyncio.sleep(30)
        return key

    assert run(fetch("a")) == "a"  # attempt 1 timed out, attempt 2 answered
    assert run(fetch("b", stall=False)) == "b"
    metrics = breaker.metrics()
    assert (metrics.calls, metrics.failures) == (3, 1)
    assert fetch.pipeline is pipeline  # type: ignore[attr-defined]
    assert fetch.__name__ == "fetch"


def test_the_decorator_ends_a_call_on_its_deadline() -> None:
    breaker = tg.CircuitBreaker()
    pipeline = tg.Pipeline(retry=tg.retry(attempts=3), breaker=breaker, deadline=0.05)

    @pipeline
    async def stalls() -> None:
        await asyncio.sleep(30)

    with pytest.raises(tg.DeadlineExceededError) as caught:
        run(stalls())
    assert (caught.value.reason, caught.value.attempts) == ("reached", 1)
    assert breaker.metrics().calls == 0

    async def in_scope() -> None:
        async with pipeline.scope(0.01):
            await stalls()

    with pytest.raises(tg.DeadlineExceededError):
        run(in_scope())


def test_the_decorator_retries_without_a_timer() -> None:
    clock = ManualClock()
    pipeline = tg.Pipeline(retry=tg.retry(attempts=3, backoff=tg.Backoff.constant(0.5), clock=clock))
    log: list[int] = []
    attempt = flaky(clock, [-0.01, 0.01], log)

    @pipeline
    async def fetch() -> int:
        return await attempt()

    start = clock.now()
    assert run(fetch()) == 2
    assert clock.now() - start == pytest.approx(0.52)
