"""Hedging and fan-out on asyncio: winners, cancelled losers, budgets, partial results."""

from __future__ import annotations

import asyncio
import inspect
from typing import Awaitable, Callable

import pytest

import tailguard as tg


class Replicas:
    """Attempt k sleeps `delays[k]` seconds (or fails if the entry is an exception class), and
    records whether it was cancelled."""

    def __init__(self, *delays: object) -> None:
        self.delays = delays
        self.started = 0
        self.cancelled: list[int] = []
        self.finished: list[int] = []

    def __call__(self) -> Awaitable[int]:
        attempt = self.started
        self.started += 1
        return self._run(attempt)

    async def _run(self, attempt: int) -> int:
        delay = self.delays[min(attempt, len(self.delays) - 1)]
        try:
            if isinstance(delay, type):
                await asyncio.sleep(0)
                raise delay(f"attempt {attempt}")
            assert isinstance(delay, (int, float))
            await asyncio.sleep(delay)
        except asyncio.CancelledError:
            self.cancelled.append(attempt)
            raise
        self.finished.append(attempt)
        return attempt


def run(coro: Awaitable[int]) -> int:
    async def main() -> int:
        return await coro

    return asyncio.run(main())


def test_a_slow_primary_is_hedged_and_cancelled() -> None:
    policy = tg.Hedge(0.01, budget="unlimited")
    replicas = Replicas(5.0, 0.001)
    assert run(policy.run(replicas)) == 1
    assert replicas.cancelled == [0]
    stats = policy.stats()
    assert (stats.primaries, stats.hedges_sent, stats.hedges_won) == (1, 1, 1)
    assert stats.extra_load == 1.0


def test_a_fast_primary_sends_no_hedge() -> None:
    policy = tg.Hedge(0.5, budget="unlimited")
    replicas = Replicas(0.001)
    assert run(policy.run(replicas)) == 0
    assert replicas.started == 1
    assert policy.stats().hedges_sent == 0


def test_a_failure_starts_the_next_attempt_at_once() -> None:
    policy = tg.Hedge(10.0, max_attempts=3, budget="unlimited")
    replicas = Replicas(ConnectionError, ConnectionError, 0.001)
    assert run(policy.run(replicas)) == 2


def test_every_attempt_failing_raises_all_failed() -> None:
    policy = tg.Hedge(0.01, max_attempts=2, budget="unlimited")
    replicas = Replicas(ConnectionError, KeyError)
    with pytest.raises(tg.AllFailedError) as info:
        run(policy.run(replicas))
    assert [type(e) for e in info.value.exceptions] == [ConnectionError, KeyError]
    assert isinstance(info.value.__cause__, KeyError)


def test_the_budget_limits_hedges() -> None:
    budget = tg.HedgeBudget(0.5, max_burst=1, min_per_second=0)
    policy = tg.Hedge(0.005, budget=budget)

    async def main() -> None:
        for _ in range(4):
            await policy.run(Replicas(0.03, 0.001))

    asyncio.run(main())
    stats = policy.stats()
    # Deposits of 0.5 per call allow a hedge every other call.
    assert stats.hedges_sent == 2 and stats.budget_refusals == 2
    assert budget.ratio == 0.5


def test_adaptive_delay_learns_a_percentile() -> None:
    policy = tg.Hedge("p50", min_samples=5, budget="unlimited", delay_floor=0.0)
    assert policy.current_delay() is None  # nothing learnt yet: no hedging on time

    async def main() -> None:
        for _ in range(6):
            await policy.run(Replicas(0.02))

    asyncio.run(main())
    delay = policy.current_delay()
    assert delay is not None and 0.015 <= delay <= 0.2
    p50 = policy.latency_quantile(0.5)
    assert p50 is not None and p50 >= 0.015
    assert policy.delay == "p50"


def test_cancelling_the_call_cancels_every_attempt() -> None:
    policy = tg.Hedge(0.005, max_attempts=3, budget="unlimited")
    replicas = Replicas(5.0, 5.0, 5.0)

    async def main() -> None:
        task = asyncio.ensure_future(policy.run(replicas))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert sorted(replicas.cancelled) == [0, 1, 2]


def test_hedge_decorator_and_function() -> None:
    policy = tg.Hedge(0.01, budget="unlimited")
    calls = 0

    @policy
    async def read(key: str) -> str:
        nonlocal calls
        calls += 1
        await asyncio.sleep(5 if calls == 1 else 0.001)
        return key

    assert inspect.iscoroutinefunction(read)
    assert asyncio.run(read("k")) == "k"
    assert calls == 2

    replicas = Replicas(5.0, 0.001)
    assert run(tg.hedge(replicas, delay=0.01, budget="unlimited")) == 1


def test_hedge_keeps_one_policy_per_call_site() -> None:
    async def main() -> None:
        for _ in range(3):
            await tg.hedge(lambda: asyncio.sleep(0, 1), delay=0.5)

    asyncio.run(main())
    from tailguard import _hedge

    sites = [site for code, site in _hedge._POLICIES.items() if code.co_name == "<lambda>"]
    assert any(policy.stats().primaries == 3 for site in sites for policy in site.values())
    with pytest.raises(tg.ConfigError):
        asyncio.run(tg.hedge(lambda: asyncio.sleep(0, 1), delay=1.0, policy=tg.Hedge(1.0)))


@pytest.mark.parametrize(
    ("settings", "parameter", "error"),
    [
        ({"delay": "p100"}, "delay", ValueError),
        ({"delay": "fast"}, "delay", ValueError),
        ({"delay": -1}, "delay", ValueError),
        ({"delay": [1]}, "delay", TypeError),
        ({"max_attempts": 0}, "max_attempts", ValueError),
        ({"max_attempts": 33}, "max_attempts", ValueError),
        ({"budget": 2000.0}, "budget", ValueError),
        ({"budget": "lots"}, "budget", TypeError),
        ({"delay": 0.1, "min_samples": 5}, "min_samples", ValueError),
        ({"delay_floor": 2.0, "delay_ceiling": 1.0}, "delay_ceiling", ValueError),
    ],
)
def test_bad_settings_name_the_parameter(
    settings: dict[str, object], parameter: str, error: type[Exception]
) -> None:
    with pytest.raises(error, match=f"`{parameter}`"):
        tg.Hedge(**settings)  # type: ignore[arg-type]


def test_scatter_gather_returns_partial_results_and_cancels_the_rest() -> None:
    replicas = Replicas(0.001, 5.0, KeyError, 0.002)
    calls: list[Callable[[], Awaitable[int]]] = [replicas] * 4

    async def main() -> list[object]:
        return await tg.scatter_gather([call() for call in calls], timeout=0.2)

    results = asyncio.run(main())
    assert results[0] == 0 and results[3] == 3
    assert isinstance(results[1], TimeoutError)
    assert isinstance(results[2], KeyError)
    assert replicas.cancelled == [1]


def test_scatter_gather_without_timeout_waits_for_all() -> None:
    async def main() -> list[object]:
        return await tg.scatter_gather([asyncio.sleep(0.001, i) for i in range(5)])

    assert asyncio.run(main()) == [0, 1, 2, 3, 4]
    with pytest.raises(tg.ConfigError):
        asyncio.run(tg.scatter_gather([], timeout=-1))


def test_first_ok_takes_the_first_success() -> None:
    replicas = Replicas(ConnectionError, 0.05, 0.001)

    async def main() -> int:
        return await tg.first_ok([replicas(), replicas(), replicas()])

    assert asyncio.run(main()) == 2
    assert replicas.cancelled == [1]
    failing = Replicas(ConnectionError, KeyError)
    with pytest.raises(tg.AllFailedError) as info:
        asyncio.run(tg.first_ok([failing(), failing()]))
    assert len(info.value.exceptions) == 2


def test_quorum() -> None:
    replicas = Replicas(0.001, 5.0, 0.002, ConnectionError)

    async def main() -> list[int]:
        return await tg.quorum(2, [replicas() for _ in range(4)])

    assert sorted(asyncio.run(main())) == [0, 2]
    assert replicas.cancelled == [1]

    failing = Replicas(ConnectionError, ConnectionError, 0.001)
    with pytest.raises(tg.QuorumError) as info:
        asyncio.run(tg.quorum(2, [failing() for _ in range(3)]))
    assert info.value.required == 2 and len(info.value.exceptions) == 2
    with pytest.raises(tg.ConfigError):
        asyncio.run(tg.quorum(3, [asyncio.sleep(0, 1)]))
