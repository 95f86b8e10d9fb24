"""Retries chain exceptions exactly as a pure-Python retry loop would.

Each scenario runs twice: through ``tailguard.retry`` (sync and async) and through a reference
loop written in plain Python. The two resulting exceptions must have the same chain: the same
classes linked the same way (``__cause__`` or ``__context__``, suppressed or not), each with the
same frames of the user's code in its traceback (the loop's own frames differ by construction and
are left out).
"""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Any, Awaitable, Callable, Optional

import pytest

import tailguard as tg
from tailguard.testing import ManualClock, set_testing

USER_FRAMES = {"inner", "attempt", "predicate", "hook", "lookup"}

Hook = Callable[[tg.RetryEvent], object]
Predicate = Callable[[BaseException], bool]


def user_frames(tb: Optional[TracebackType]) -> list[str]:
    names = []
    while tb is not None:
        name = tb.tb_frame.f_code.co_name
        if name in USER_FRAMES:
            names.append(name)
        tb = tb.tb_next
    return names


def describe(exc: Optional[BaseException]) -> list[tuple[Any, ...]]:
    """The chain from `exc` down: class, user frames, and how it links to the next."""
    chain: list[tuple[Any, ...]] = []
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        link = "cause" if exc.__cause__ is not None else "context"
        chain.append(
            (
                type(exc).__name__,
                user_frames(exc.__traceback__),
                link,
                exc.__suppress_context__,
                exc.__context__ is not None,
            )
        )
        exc = exc.__cause__ if exc.__cause__ is not None else exc.__context__
    return chain


class Event:
    """The reference loop's stand-in for `RetryEvent`."""

    def __init__(self, attempt: int, exception: BaseException) -> None:
        self.attempt = attempt
        self.exception = exception


def reference_sync(
    fn: Callable[[], object], attempts: int, on: Optional[Predicate], on_retry: Optional[Hook]
) -> object:
    attempt = 0
    while True:
        attempt += 1
        try:
            return fn()
        except Exception as exc:
            if on is not None and not on(exc):
                raise
            if attempt >= attempts:
                raise tg.RetryError("gave up", attempt, 0.0, "exhausted") from exc
            if on_retry is not None:
                on_retry(Event(attempt, exc))  # type: ignore[arg-type]


async def reference_async(
    fn: Callable[[], Awaitable[object]],
    attempts: int,
    on: Optional[Predicate],
    on_retry: Optional[Hook],
) -> object:
    attempt = 0
    while True:
        attempt += 1
        try:
            return await fn()
        except Exception as exc:
            if on is not None and not on(exc):
                raise
            if attempt >= attempts:
                raise tg.RetryError("gave up", attempt, 0.0, "exhausted") from exc
            if on_retry is not None:
                on_retry(Event(attempt, exc))  # type: ignore[arg-type]


def inner() -> None:
    raise ConnectionError("down")


def attempt() -> None:
    inner()


async def async_attempt() -> None:
    await asyncio.sleep(0)
    inner()


def lookup() -> None:
    raise KeyError("missing")


def raising_predicate(exc: BaseException) -> bool:
    def predicate() -> bool:
        raise ValueError("the predicate failed")

    return predicate()


def refusing_predicate(exc: BaseException) -> bool:
    return False


def raising_hook(event: tg.RetryEvent) -> None:
    def hook() -> None:
        raise ValueError("the hook failed")

    hook()


def hook_raising_while_handling(event: tg.RetryEvent) -> None:
    def hook() -> None:
        try:
            lookup()
        except KeyError:
            raise ValueError("the hook failed handling its own error")

    hook()


def hook_raising_from_none(event: tg.RetryEvent) -> None:
    def hook() -> None:
        raise ValueError("no context shown") from None

    hook()


def hook_reraising_the_event(event: tg.RetryEvent) -> None:
    raise event.exception


SCENARIOS: dict[str, tuple[int, Optional[Predicate], Optional[Hook]]] = {
    "exhausted": (2, None, None),
    "exhausted-after-hooks": (3, None, lambda event: None),
    "not-retryable": (3, refusing_predicate, None),
    "predicate-raises": (3, raising_predicate, None),
    "hook-raises": (3, None, raising_hook),
    "hook-raises-while-handling": (3, None, hook_raising_while_handling),
    "hook-raises-from-none": (3, None, hook_raising_from_none),
    "hook-reraises-the-attempts-error": (3, None, hook_reraising_the_event),
}


def outcome(call: Callable[[], object]) -> BaseException:
    with set_testing(True):
        try:
            call()
        except Exception as exc:
            return exc
    raise AssertionError("the call did not fail")


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_sync_retry_chains_like_a_python_loop(name: str) -> None:
    attempts, on, on_retry = SCENARIOS[name]
    policy = tg.Retry(attempts=attempts, on=on, on_retry=on_retry)
    ours = outcome(lambda: policy.call(attempt))
    reference = outcome(lambda: reference_sync(attempt, attempts, on, on_retry))
    assert describe(ours) == describe(reference)


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_async_retry_chains_like_a_python_loop(name: str) -> None:
    attempts, on, on_retry = SCENARIOS[name]
    decorated = tg.retry(attempts=attempts, on=on, on_retry=on_retry)(async_attempt)
    ours = outcome(lambda: asyncio.run(decorated()))
    reference = outcome(
        lambda: asyncio.run(reference_async(async_attempt, attempts, on, on_retry))
    )
    assert describe(ours) == describe(reference)


def test_sync_retry_error_keeps_the_users_frames() -> None:
    # The report printed after an incident shows where the last attempt failed.
    error = outcome(lambda: tg.Retry(attempts=2).call(attempt))
    assert isinstance(error, tg.RetryError)
    assert error.__cause__ is not None
    assert user_frames(error.__cause__.__traceback__) == ["attempt", "inner"]
    assert error.__context__ is error.__cause__


def test_sync_hook_sees_the_traceback() -> None:
    seen: list[list[str]] = []
    policy = tg.Retry(
        attempts=2, on_retry=lambda event: seen.append(user_frames(event.exception.__traceback__))
    )
    outcome(lambda: policy.call(attempt))
    assert seen == [["attempt", "inner"]]


def test_deadline_error_chains_like_a_python_loop() -> None:
    # A deadline that passes while waiting: the loop raises outside any `except` block, so the
    # error has the last attempt as its cause and no other context.
    policy = tg.Retry(
        attempts=5,
        deadline=0.05,
        backoff=tg.Backoff.constant(0.2, jitter="none"),
        clock=ManualClock(),
    )
    error = outcome(lambda: policy.call(attempt))
    assert isinstance(error, tg.RetryError)
    assert error.reason == "deadline"
    assert error.__cause__ is not None
    assert user_frames(error.__cause__.__traceback__) == ["attempt", "inner"]


def test_sync_breaker_predicate_sees_the_traceback_and_chains_its_error() -> None:
    # As in `try: func() except Exception as exc: if on(exc): ...`, and as the async breaker.
    seen: list[list[str]] = []

    def predicate(exc: BaseException) -> bool:
        seen.append(user_frames(exc.__traceback__))
        return True

    with pytest.raises(ConnectionError):
        tg.CircuitBreaker(on=predicate).call(attempt)
    assert seen == [["attempt", "inner"]]

    breaker = tg.CircuitBreaker(on=raising_predicate)
    with pytest.raises(ValueError) as caught:
        breaker.call(attempt)
    reference = outcome(lambda: reference_breaker(attempt, raising_predicate))
    assert describe(caught.value) == describe(reference)
    assert isinstance(caught.value.__context__, ConnectionError)


def reference_breaker(fn: Callable[[], object], on: Predicate) -> object:
    try:
        return fn()
    except Exception as exc:
        on(exc)
        raise
