"""What a hedged call raises when every attempt failed.

One attempt (no hedge sent): that attempt's own exception, unwrapped, as the unhedged call would
raise it, so ``except ConnectionError`` still works. Several: ``AllFailedError`` with all of them.
"""

from __future__ import annotations

import asyncio
import gc
import traceback
import weakref
from typing import Awaitable, Callable, TypeVar

import pytest

import tailguard as tg


T = TypeVar("T")


class Payload:
    pass


def run(awaitable: Awaitable[T]) -> T:
    async def main() -> T:
        return await awaitable

    return asyncio.run(main())


def failing(payloads: list[weakref.ref[Payload]]) -> Callable[[], Awaitable[int]]:
    async def fetch_from_replica() -> int:
        payload = Payload()
        payloads.append(weakref.ref(payload))
        await asyncio.sleep(0)
        raise ConnectionError("replica down")

    return fetch_from_replica


def test_one_attempt_raises_its_own_exception() -> None:
    policy = tg.Hedge(10.0, max_attempts=1)
    with pytest.raises(ConnectionError, match="replica down") as caught:
        run(policy.run(failing([])))
    # The traceback still shows where the attempt failed.
    frames = [frame.name for frame in traceback.extract_tb(caught.value.__traceback__)]
    assert "fetch_from_replica" in frames


def test_one_attempt_because_the_budget_refused_the_hedge() -> None:
    budget = tg.HedgeBudget(0.01, max_burst=1)
    while budget.try_withdraw():
        pass
    policy = tg.Hedge(10.0, max_attempts=3, budget=budget)
    with pytest.raises(ConnectionError):
        run(policy.run(failing([])))
    assert policy.stats().budget_refusals == 1


def test_the_hedge_function_and_decorator_follow_the_same_rule() -> None:
    with pytest.raises(ConnectionError):
        asyncio.run(tg.hedge(failing([]), max_attempts=1))

    @tg.Hedge(10.0, max_attempts=1)
    async def fetch() -> int:
        raise ConnectionError("replica down")

    with pytest.raises(ConnectionError):
        asyncio.run(fetch())


def test_several_attempts_raise_all_failed_with_each_one() -> None:
    policy = tg.Hedge(10.0, max_attempts=2, budget="unlimited")
    with pytest.raises(tg.AllFailedError) as caught:
        run(policy.run(failing([])))
    assert [type(e) for e in caught.value.exceptions] == [ConnectionError, ConnectionError]
    assert caught.value.__cause__ is caught.value.exceptions[-1]


def test_the_reraised_exception_frees_the_attempts_frames() -> None:
    payloads: list[weakref.ref[Payload]] = []
    policy = tg.Hedge(10.0, max_attempts=1)

    async def main() -> None:
        for _ in range(10):
            try:
                await policy.run(failing(payloads))
            except ConnectionError:
                pass

    gc.collect()
    gc.disable()
    try:
        asyncio.run(main())
        alive = sum(ref() is not None for ref in payloads)
    finally:
        gc.enable()
    assert len(payloads) == 10
    assert alive == 0
