"""The binding drives the core's sans-IO hedge state (issue 16): one native `HedgeCall` per call
makes every decision on the policy's clock, and the statistics are the core's. With a
`ManualClock` the decisions are exact: when the next hedge is due, the budget's reserve, and the
primary latencies an adaptive delay learns from."""

from __future__ import annotations

import asyncio
from typing import Awaitable

import pytest

import tailguard as tg
from tailguard.testing import ManualClock


def stats(policy: tg.Hedge) -> tuple[int, int, int, int]:
    s = policy.stats()
    return (s.primaries, s.hedges_sent, s.hedges_won, s.budget_refusals)


def test_the_binding_keeps_no_hedge_counters_of_its_own() -> None:
    for private in ("_begin", "_try_hedge", "_hedge_won", "_primary_done"):
        assert not hasattr(tg.Hedge, private), private


def test_a_call_says_when_each_hedge_is_due_and_counts_them() -> None:
    clock = ManualClock()
    policy = tg.Hedge(0.01, max_attempts=3, budget="unlimited", clock=clock)
    call = policy._start()
    assert (call.attempts, call.in_flight, call.winner) == (1, 1, None)
    assert call.timeout() == pytest.approx(0.01)
    clock.advance(0.004)
    assert call.timeout() == pytest.approx(0.006)
    clock.advance(0.008)  # late: the next one is due the delay after this one starts
    assert call.timeout() == 0.0
    assert call.try_hedge() == 2  # attempts are numbered from 1: the primary is 1
    assert call.timeout() == pytest.approx(0.01)
    assert call.try_hedge() == 3
    assert call.timeout() is None  # the cap: three attempts
    assert call.try_hedge() is None
    call.done(3, False)
    call.done(2, True)
    assert (call.attempts, call.in_flight, call.winner) == (3, 1, 2)
    assert stats(policy) == (1, 2, 1, 0)
    assert policy.stats().extra_load == 2.0
    assert "winner=2" in repr(call)


def test_the_budget_is_drawn_on_the_policys_clock_and_a_refused_hedge_comes_back() -> None:
    clock = ManualClock()
    policy = tg.Hedge(
        0.01, max_attempts=3, budget=tg.HedgeBudget(0.0, min_per_second=1), clock=clock
    )
    first = policy._start()
    assert first.try_hedge() == 2  # the reserve's one hedge
    second = policy._start()
    assert second.try_hedge() is None  # refused, and counted
    assert second.timeout() == pytest.approx(0.02)  # its next chance: twice the delay
    clock.advance(1.0)
    assert second.try_hedge() == 2  # refilled a second later: the call still stuck gets it
    third = policy._start()
    assert third.try_hedge() is None
    assert stats(policy) == (3, 2, 0, 2)


def test_an_adaptive_delay_learns_exact_primary_latencies_from_a_manual_clock() -> None:
    clock = ManualClock()
    policy = tg.Hedge("p50", min_samples=5, delay_floor=0.0, budget="unlimited", clock=clock)

    async def primary() -> str:
        clock.advance(0.02)  # the primary takes 20 ms of the policy's time
        await asyncio.sleep(0)
        return "ok"

    async def main() -> None:
        for _ in range(5):
            assert await policy.run(primary) == "ok"

    assert policy.current_delay() is None
    asyncio.run(main())
    assert policy.latency_quantile(0.5) == pytest.approx(0.02, rel=0.01)
    assert policy.current_delay() == pytest.approx(0.02, rel=0.01)
    assert stats(policy) == (5, 0, 0, 0)


def test_only_the_primary_is_recorded_a_cancelled_one_as_a_lower_bound() -> None:
    clock = ManualClock()
    policy = tg.Hedge("p50", min_samples=1, budget="unlimited", clock=clock)
    call = policy._start()
    call.done(1, False)  # no delay yet: hedging only after a failure
    assert call.try_hedge() == 2
    clock.advance(0.5)
    call.done(2, True)  # a hedge is not recorded
    assert policy.latency_quantile(1.0) == 0.0
    cancelled = policy._start()
    clock.advance(0.04)
    cancelled.cancel()
    clock.advance(1.0)
    cancelled.cancel()  # once over, nothing more
    assert policy.latency_quantile(1.0) == pytest.approx(0.04, rel=0.01)


def test_cancelling_a_hedged_call_records_its_primary_on_the_policys_clock() -> None:
    clock = ManualClock()
    policy = tg.Hedge("p50", min_samples=1, budget="unlimited", clock=clock)
    started = asyncio.Event()

    async def stalled() -> str:
        started.set()
        await asyncio.sleep(60)
        return "late"

    async def main() -> None:
        task = asyncio.ensure_future(policy.run(stalled))
        await started.wait()
        clock.advance(0.07)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert policy.latency_quantile(1.0) == pytest.approx(0.07, rel=0.01)
    assert stats(policy) == (1, 0, 0, 0)


def test_done_ignores_attempts_never_started() -> None:
    policy = tg.Hedge(0.01, budget="unlimited")
    call = policy._start()
    for attempt in (0, 2, 9):
        call.done(attempt, True)
    assert (call.in_flight, call.winner) == (1, None)
    call.done(1, True)
    assert call.winner == 1
    assert stats(policy) == (1, 0, 0, 0)


def test_the_asyncio_loop_numbers_and_counts_what_the_state_decides() -> None:
    """A primary failing at once, a hedge failing, the third attempt winning: the loop starts
    exactly the attempts the state allows, and the statistics are the state's."""
    policy = tg.Hedge(10.0, max_attempts=3, budget="unlimited")
    started: list[int] = []

    def factory() -> Awaitable[int]:
        started.append(len(started) + 1)
        return attempt(started[-1])

    async def attempt(n: int) -> int:
        await asyncio.sleep(0)
        if n < 3:
            raise ConnectionError(f"attempt {n}")
        return n

    async def main() -> int:
        return await policy.run(factory)

    assert asyncio.run(main()) == 3
    assert started == [1, 2, 3]
    assert stats(policy) == (1, 2, 1, 0)


def test_an_adaptive_delay_is_never_earlier_than_the_budget_pays_for() -> None:
    # 5 % of calls cross p95; a 2 % budget pays a hedge for the 2 % that cross p98.
    clock = ManualClock()
    policy = tg.Hedge("p95", min_samples=100, delay_floor=0.0, budget=0.02, clock=clock)
    assert policy.delay == "p95"  # the setting as given
    assert policy.delay_percentile == pytest.approx(0.98)
    for i in range(1, 101):  # primaries of 1, 2 ... 100 ms
        call = policy._start()
        clock.advance(i / 1000)
        call.done(1, True)
    assert policy.current_delay() == pytest.approx(0.098, rel=0.01)
    assert tg.Hedge("p95", budget=0.05).delay_percentile == pytest.approx(0.95)
    assert tg.Hedge("p95", budget="unlimited").delay_percentile == pytest.approx(0.95)
    assert tg.Hedge(0.01, budget=0.02).delay_percentile is None
