"""@tailguard.retry on async functions: a small coroutine around the native state machine."""

from __future__ import annotations

import asyncio
import inspect
import time
from typing import Callable

import pytest

import tailguard as tg
from tailguard.testing import ManualClock, set_testing

FAST = tg.Backoff.constant(0.001, jitter="none")


class AsyncFlaky:
    """Fails with `error` the first `failures` calls, then returns the call count."""

    def __init__(
        self, failures: int, error: Callable[[], BaseException] = ConnectionError
    ) -> None:
        self.failures = failures
        self.error = error
        self.calls = 0

    async def __call__(self) -> int:
        self.calls += 1
        await asyncio.sleep(0)
        if self.calls <= self.failures:
            raise self.error()
        return self.calls


def test_async_functions_stay_coroutine_functions() -> None:
    @tg.retry(on=ConnectionError)
    async def fetch(x: int) -> int:
        """Fetches x."""
        return x

    assert inspect.iscoroutinefunction(fetch)
    assert fetch.__name__ == "fetch" and fetch.__doc__ == "Fetches x."
    assert asyncio.run(fetch(7)) == 7


@pytest.mark.parametrize("needs_run", [False, True])
def test_retries_until_success(needs_run: bool) -> None:
    flaky = AsyncFlaky(2)
    deadline = 60.0 if needs_run else None  # a deadline takes the full loop from the start

    @tg.retry(on=ConnectionError, attempts=3, backoff=FAST, deadline=deadline)
    async def call() -> int:
        return await flaky()

    assert asyncio.run(call()) == 3
    assert flaky.calls == 3


@pytest.mark.parametrize("needs_run", [False, True])
def test_gives_up_with_retry_error(needs_run: bool) -> None:
    flaky = AsyncFlaky(10)
    deadline = 60.0 if needs_run else None

    @tg.retry(attempts=3, backoff=FAST, deadline=deadline)
    async def call() -> int:
        return await flaky()

    with pytest.raises(tg.RetryError) as info:
        asyncio.run(call())
    assert (info.value.attempts, info.value.reason) == (3, "exhausted")
    assert isinstance(info.value.__cause__, ConnectionError)
    assert flaky.calls == 3


@pytest.mark.parametrize("needs_run", [False, True])
def test_not_retryable_is_reraised_unwrapped(needs_run: bool) -> None:
    flaky = AsyncFlaky(10, KeyError)
    deadline = 60.0 if needs_run else None

    @tg.retry(on=ConnectionError, backoff=FAST, deadline=deadline)
    async def call() -> int:
        return await flaky()

    with pytest.raises(KeyError):
        asyncio.run(call())
    assert flaky.calls == 1


def test_cancellation_is_never_retried_or_counted() -> None:
    budget = tg.RetryBudget(0.5, min_per_second=0)
    calls = 0

    @tg.retry(on=BaseException, attempts=5, backoff=FAST, budget=budget)
    async def hang() -> None:
        nonlocal calls
        calls += 1
        await asyncio.sleep(10)

    async def main() -> None:
        task = asyncio.ensure_future(hang())
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert calls == 1


def test_an_attempt_raising_cancelled_error_itself_is_not_retried() -> None:
    flaky = AsyncFlaky(10, asyncio.CancelledError)

    @tg.retry(on=BaseException, attempts=5, backoff=FAST)
    async def call() -> int:
        return await flaky()

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(call())
    assert flaky.calls == 1


def test_cancelling_during_the_backoff_sleep_refunds_the_budget() -> None:
    # The system clock: a loop on a manual clock would not really sleep.
    budget = tg.RetryBudget(1.0, min_per_second=0)
    for _ in range(3):
        budget.deposit()
    assert budget.available() == 3

    @tg.retry(attempts=5, backoff=tg.Backoff.constant(30, jitter="none"), budget=budget)
    async def failing() -> None:
        raise ConnectionError

    async def main() -> None:
        task = asyncio.ensure_future(failing())
        await asyncio.sleep(0.01)  # the first attempt failed; a retry is granted
        assert budget.available() == 3  # 3 + 1 deposit - 1 withdrawn
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    # The granted retry was never made: it was refunded.
    assert budget.available() == 4


def test_per_attempt_timeout_is_retried_and_reported() -> None:
    calls = 0

    @tg.retry(attempts=3, timeout=0.02, backoff=FAST, on=ConnectionError)
    async def slow_then_fast() -> str:
        nonlocal calls
        calls += 1
        if calls < 3:
            await asyncio.sleep(5)
        return "done"

    started = time.monotonic()
    assert asyncio.run(slow_then_fast()) == "done"
    assert calls == 3
    assert time.monotonic() - started < 2


def test_timeouts_can_be_made_final() -> None:
    @tg.retry(attempts=3, timeout=0.01, backoff=FAST, retry_on_timeout=False)
    async def slow() -> None:
        await asyncio.sleep(5)

    with pytest.raises(tg.AttemptTimeoutError) as info:
        asyncio.run(slow())
    assert isinstance(info.value, TimeoutError)


def test_the_functions_own_timeout_error_is_classified_normally() -> None:
    flaky = AsyncFlaky(10, TimeoutError)

    @tg.retry(attempts=3, timeout=5.0, backoff=FAST, on=KeyError)
    async def call() -> int:
        return await flaky()

    with pytest.raises(TimeoutError) as info:
        asyncio.run(call())
    assert not isinstance(info.value, tg.AttemptTimeoutError)
    assert flaky.calls == 1


def test_exhausted_after_timeouts_chains_the_attempt_timeout() -> None:
    @tg.retry(attempts=2, timeout=0.01, backoff=FAST)
    async def slow() -> None:
        await asyncio.sleep(5)

    with pytest.raises(tg.RetryError) as info:
        asyncio.run(slow())
    assert isinstance(info.value.__cause__, tg.AttemptTimeoutError)


def test_deadline_on_a_manual_clock() -> None:
    clock = ManualClock()
    flaky = AsyncFlaky(100)

    @tg.retry(attempts=100, deadline=10, backoff=tg.Backoff.constant(4, jitter="none"), clock=clock)
    async def call() -> int:
        return await flaky()

    with pytest.raises(tg.RetryError) as info:
        asyncio.run(call())
    assert info.value.reason == "deadline"
    assert flaky.calls == 3  # at 0, 4 and 8 s; 12 s is past the deadline
    assert clock.now() == pytest.approx(8.0)


def test_testing_mode_makes_async_backoffs_instant() -> None:
    flaky = AsyncFlaky(3)

    @tg.retry(attempts=4, backoff=tg.Backoff.constant(60))
    async def call() -> int:
        return await flaky()

    started = time.monotonic()
    with set_testing(True):
        assert asyncio.run(call()) == 4
    assert time.monotonic() - started < 1


def test_hooks_see_every_retry() -> None:
    events: list[tg.RetryEvent] = []
    flaky = AsyncFlaky(2)

    @tg.retry(backoff=FAST, on_retry=events.append)
    async def call() -> int:
        return await flaky()

    assert asyncio.run(call()) == 3
    assert [e.attempt for e in events] == [1, 2]
    assert all(isinstance(e.exception, ConnectionError) for e in events)


def test_async_methods() -> None:
    class Client:
        def __init__(self) -> None:
            self.flaky = AsyncFlaky(1)

        @tg.retry(backoff=FAST)
        async def get(self) -> int:
            return await self.flaky()

    assert asyncio.run(Client().get()) == 2


def test_budget_deposits_on_the_happy_path() -> None:
    clock = ManualClock()
    budget = tg.RetryBudget(0.5, min_per_second=0, clock=clock)

    @tg.retry(budget=budget)
    async def ok() -> int:
        return 1

    async def main() -> None:
        for _ in range(10):
            await ok()

    asyncio.run(main())
    assert budget.available() == 5
