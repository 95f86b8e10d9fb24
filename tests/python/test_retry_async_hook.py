"""An `async def` passed as `on_retry`: awaited by async retries, refused by sync ones."""

from __future__ import annotations

import asyncio
import gc
import inspect
import warnings
from typing import Any, Coroutine, Iterator

import pytest

import tailguard as tg
from tailguard.testing import set_testing


@pytest.fixture(autouse=True)
def _no_sleeps_and_no_unawaited_coroutines() -> Iterator[None]:
    with set_testing(True), warnings.catch_warnings():
        # A coroutine that is never awaited warns when collected; make that a failure.
        warnings.simplefilter("error", RuntimeWarning)
        yield
        gc.collect()


@pytest.mark.parametrize("settings", [{}, {"deadline": 60.0}], ids=["plain", "deadline"])
def test_async_retry_awaits_an_async_hook_before_the_next_attempt(
    settings: dict[str, Any],
) -> None:
    log: list[str] = []

    async def hook(event: tg.RetryEvent) -> None:
        await asyncio.sleep(0)
        log.append(f"hook {event.attempt}")

    @tg.retry(attempts=3, on_retry=hook, **settings)
    async def call() -> int:
        log.append("attempt")
        if len(log) < 5:
            raise ConnectionError("not yet")
        return len(log)

    assert asyncio.run(call()) == 5
    assert log == ["attempt", "hook 1", "attempt", "hook 2", "attempt"]


def test_an_async_hooks_error_propagates_chained_to_the_attempts() -> None:
    async def hook(event: tg.RetryEvent) -> None:
        await asyncio.sleep(0)
        raise ValueError("the hook failed")

    calls = 0

    @tg.retry(attempts=3, on_retry=hook)
    async def call() -> None:
        nonlocal calls
        calls += 1
        raise ConnectionError("down")

    with pytest.raises(ValueError, match="the hook failed") as caught:
        asyncio.run(call())
    assert calls == 1
    assert isinstance(caught.value.__context__, ConnectionError)


def test_sync_retry_refuses_an_async_hook_when_decorating() -> None:
    async def hook(event: tg.RetryEvent) -> None:
        pass

    policy = tg.Retry(on_retry=hook)
    with pytest.raises(tg.ConfigError, match="on_retry") as caught:

        @policy
        def call() -> None:
            pass

    assert caught.value.parameter == "on_retry"
    with pytest.raises(tg.ConfigError, match="on_retry"):
        policy.call(lambda: None)


def test_the_same_policy_still_retries_async_functions() -> None:
    seen: list[int] = []

    async def hook(event: tg.RetryEvent) -> None:
        seen.append(event.attempt)

    policy = tg.Retry(attempts=2, on_retry=hook)

    @policy
    async def call() -> int:
        if not seen:
            raise ConnectionError("once")
        return 7

    assert asyncio.run(call()) == 7
    assert seen == [1]


def test_sync_retry_refuses_a_hook_that_returns_a_coroutine() -> None:
    # Not an `async def`, so only the call can tell; the coroutine is closed, not left to warn.
    made: list[Coroutine[Any, Any, None]] = []

    async def later(event: tg.RetryEvent) -> None:
        pass

    class Hook:
        def __call__(self, event: tg.RetryEvent) -> Coroutine[Any, Any, None]:
            coroutine = later(event)
            made.append(coroutine)
            return coroutine

    calls = 0

    @tg.retry(attempts=3, on_retry=Hook())
    def call() -> None:
        nonlocal calls
        calls += 1
        raise ConnectionError("down")

    with pytest.raises(TypeError, match="on_retry") as caught:
        call()
    assert calls == 1
    assert isinstance(caught.value.__context__, ConnectionError)
    assert inspect.getcoroutinestate(made[0]) == inspect.CORO_CLOSED
