"""A fresh hedge budget allows hedging from the first call (its floor is a reserve that starts
full), while the ratio still bounds the extra load of a busy client."""

from __future__ import annotations

import asyncio
from typing import Awaitable

import tailguard as tg


class StalledPrimary:
    """The first attempt of each call stalls for `stall` seconds; any other answers at once."""

    def __init__(self, stall: float) -> None:
        self.stall = stall
        self.attempts = 0

    def __call__(self) -> Awaitable[str]:
        attempt = self.attempts
        self.attempts += 1
        return self._run(attempt)

    async def _run(self, attempt: int) -> str:
        if attempt == 0:
            await asyncio.sleep(self.stall)
            return "primary"
        await asyncio.sleep(0.001)
        return "hedge"


def test_the_first_call_of_tg_hedge_is_hedged() -> None:
    async def main() -> tuple[str, float]:
        fetch = StalledPrimary(stall=5.0)
        loop = asyncio.get_running_loop()
        start = loop.time()
        answer = await tg.hedge(fetch, delay=0.05)
        return answer, loop.time() - start

    answer, took = asyncio.run(main())
    assert answer == "hedge"
    # The 5 s stall was cut at the 50 ms delay (a generous bound for a loaded machine).
    assert took < 2.5


def test_a_fresh_policy_hedges_its_first_call_and_counts_it() -> None:
    policy = tg.Hedge(0.01)  # the default budget: a 5 % ratio and a floor

    async def main() -> str:
        return await policy.run(StalledPrimary(stall=5.0))

    assert asyncio.run(main()) == "hedge"
    stats = policy.stats()
    assert (stats.primaries, stats.hedges_sent, stats.budget_refusals) == (1, 1, 0)


def test_the_floor_holds_one_seconds_worth() -> None:
    budget = tg.HedgeBudget(0.05, min_per_second=3)
    assert budget.min_per_second == 3
    granted = sum(budget.try_withdraw() for _ in range(10))
    assert granted == 3  # one second's worth, at once


def test_without_a_floor_a_fresh_budget_refuses() -> None:
    budget = tg.HedgeBudget(0.05, min_per_second=0)
    assert not budget.try_withdraw()
    for _ in range(20):
        budget.deposit()
    assert budget.try_withdraw()  # 20 x 0.05 = one whole hedge
    assert not budget.try_withdraw()


def test_the_budget_reserve_refills_on_the_policys_clock() -> None:
    """With a `ManualClock`, the reserve's per-second refill follows that clock, not the
    system's: one hedge a second, refilled when the manual clock moves on a second."""
    from tailguard.testing import ManualClock

    clock = ManualClock()
    policy = tg.Hedge(
        0.01,
        budget=tg.HedgeBudget(0.0001, min_per_second=1),
        clock=clock,
    )

    async def call() -> str:
        return await tg.hedge(StalledPrimary(stall=0.2), policy=policy)

    async def main() -> list[str]:
        answers = [await call()]  # the reserve's one hedge
        answers.append(await call())  # refused: the primary answers after its stall
        clock.advance(1.0)
        answers.append(await call())  # refilled on the manual clock
        return answers

    assert asyncio.run(main()) == ["hedge", "primary", "hedge"]
    assert policy.stats().budget_refusals == 1
