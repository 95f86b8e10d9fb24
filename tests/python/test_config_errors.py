"""Settings refused or explained where they are given, not at call time; defaults that say what
they do (issue 19, items 8 to 10 and 12)."""

from __future__ import annotations

import asyncio
import pickle
from typing import Any, Callable

import pytest

import tailguard as tg
from tailguard.testing import ManualClock

MAKERS: list[Callable[..., object]] = [tg.Retry, tg.retry, tg.CircuitBreaker]


@pytest.mark.parametrize("make", MAKERS, ids=["Retry", "retry", "CircuitBreaker"])
@pytest.mark.parametrize("on", [int, str, object, (int,), (KeyError, 3), 5])
def test_on_refuses_what_names_no_exception_when_built(make: Callable[..., object], on: Any) -> None:
    # `int` is callable, so it used to pass as a predicate; calling `int(exc)` then raised a
    # TypeError in place of the user's exception.
    with pytest.raises(TypeError, match="`on`"):
        make(on=on)


@pytest.mark.parametrize("make", MAKERS, ids=["Retry", "retry", "CircuitBreaker"])
def test_an_empty_on_tuple_is_the_same_config_error_everywhere(make: Callable[..., object]) -> None:
    with pytest.raises(tg.ConfigError, match="at least one exception class") as info:
        make(on=())
    assert info.value.parameter == "on"


def test_the_users_exception_is_what_a_bad_on_can_no_longer_replace() -> None:
    # What is still accepted keeps working: a class, a tuple, a predicate (also a callable
    # object that is not a class).
    class IsKeyError:
        def __call__(self, exc: BaseException) -> bool:
            return isinstance(exc, KeyError)

    for on in (KeyError, (KeyError, ValueError), lambda e: isinstance(e, KeyError), IsKeyError()):
        breaker = tg.CircuitBreaker(on=on)
        with pytest.raises(KeyError):
            breaker.call(lambda: {"a": 1}["missing"])
        assert breaker.metrics().failures == 1


def test_hedge_refuses_a_policy_that_is_not_a_hedge() -> None:
    async def main() -> int:
        return await tg.hedge(lambda: asyncio.sleep(0, 1), policy="x")  # type: ignore[call-overload,no-any-return]

    with pytest.raises(TypeError, match="`policy` must be a tailguard.Hedge"):
        asyncio.run(main())


def test_the_default_open_duration_is_5_to_10_s_as_documented() -> None:
    doc = tg.CircuitBreaker.__doc__ or ""
    assert "10 % jitter" not in doc
    assert "equal jitter" in doc and "5 to 10 s" in doc
    openings = []
    for _ in range(40):
        clock = ManualClock()
        breaker = tg.CircuitBreaker(consecutive_failures=1, clock=clock)
        with pytest.raises(ZeroDivisionError):
            breaker.call(lambda: 1 / 0)
        open_for = breaker.metrics().open_for
        assert open_for is not None and 5.0 <= open_for <= 10.0
        clock.advance(4.999)
        with pytest.raises(tg.CircuitOpenError):
            breaker.acquire()
        clock.advance(10.0 - 4.999)
        breaker.acquire().success()  # the probe gets through by 10 s at the latest
        openings.append(open_for)
    # Equal jitter spreads the openings over [5, 10] s, not 10 % below 10 s (40 draws all
    # above 9 s has a chance of 0.2**40).
    assert min(openings) < 9.0


def test_a_constant_backoff_is_constant_unless_asked() -> None:
    constant = tg.Backoff.constant(0.1)
    assert constant.jitter == "none"
    assert constant.take(5) == [0.1] * 5
    assert tg.Backoff.constant(0.1, jitter="full").jitter == "full"
    assert tg.Backoff.linear(0.1, 0.1).jitter == "full"
    assert tg.Backoff.exponential(0.1).jitter == "full"


def _delays_of_one_call(policy: tg.Retry) -> list[float]:
    delays: list[float] = []

    def fail() -> None:
        raise ConnectionError

    with pytest.raises(tg.RetryError):
        tg.Retry(
            attempts=policy.attempts,
            backoff=policy.backoff,
            on_retry=lambda event: delays.append(event.delay),
            clock=policy.clock,
        ).call(fail)
    return delays


def test_a_seeded_backoff_gives_the_first_call_the_delays_take_shows() -> None:
    backoff = tg.Backoff.exponential(0.1, seed=3)
    delays: list[float] = []
    policy = tg.Retry(
        attempts=5,
        backoff=backoff,
        on_retry=lambda event: delays.append(event.delay),
        clock=ManualClock(),
    )

    def fail() -> None:
        raise ConnectionError

    with pytest.raises(tg.RetryError):
        policy.call(fail)
    assert delays == backoff.take(4)
    first = list(delays)
    delays.clear()
    with pytest.raises(tg.RetryError):
        policy.call(fail)
    # The second call draws a stream of its own (calls do not retry in lockstep), the same one
    # for every policy with this backoff.
    assert delays != first
    second = list(delays)
    delays.clear()
    again = tg.Retry(
        attempts=5, backoff=backoff, on_retry=lambda e: delays.append(e.delay), clock=ManualClock()
    )
    for _ in range(2):
        with pytest.raises(tg.RetryError):
            again.call(fail)
    assert delays == first + second
    # A breaker's open durations follow take(n) too.
    clock = ManualClock()
    durations = tg.Backoff.exponential(1.0, jitter="equal", seed=3)
    breaker = tg.CircuitBreaker(consecutive_failures=1, open_backoff=durations, clock=clock)
    with pytest.raises(ZeroDivisionError):
        breaker.call(lambda: 1 / 0)
    assert breaker.metrics().open_for == pytest.approx(durations.take(1)[0])


def test_a_budget_on_another_clock_says_how_to_fix_it() -> None:
    for budget_clock, policy_clock in [(None, ManualClock()), (ManualClock(), ManualClock())]:
        budget = tg.RetryBudget(0.1, clock=budget_clock)
        with pytest.raises(tg.ConfigError) as info:
            tg.Retry(budget=budget, clock=policy_clock)
        assert info.value.parameter == "budget"
        assert "RetryBudget(..., clock=clock)" in str(info.value)
        assert "leave out the policy's `clock`" in str(info.value)
    for doc in (tg.RetryBudget.__doc__, tg.Retry.__doc__):
        text = " ".join((doc or "").split())
        assert "clock=" in text and "follows its budget's" in text
    # What the message advises works.
    clock = ManualClock()
    assert tg.Retry(budget=tg.RetryBudget(0.1, clock=clock)).clock is not None


def test_a_predicate_returning_seconds_is_documented_and_waits_that_long() -> None:
    doc = " ".join((tg.Retry.__doc__ or "").split())
    assert "a number of seconds: retry after exactly that long" in doc
    events: list[tg.RetryEvent] = []
    calls = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError
        return "ok"

    policy = tg.Retry(on=lambda exc: 2.5, on_retry=events.append, clock=ManualClock())
    assert policy.call(flaky) == "ok"
    assert [e.delay for e in events] == [2.5, 2.5]


def test_hedge_errors_name_python_settings() -> None:
    with pytest.raises(tg.ConfigError) as info:
        tg.Hedge(0.1, min_samples=5)
    assert info.value.parameter == "min_samples"
    assert "adaptive_delay" not in str(info.value)
    assert 'delay` such as "p95"' in str(info.value)


def test_a_busy_half_open_breaker_does_not_claim_a_retry_time() -> None:
    clock = ManualClock()
    breaker = tg.CircuitBreaker(
        consecutive_failures=1, open_duration=10.0, half_open_calls=1, clock=clock
    )
    with pytest.raises(ZeroDivisionError):
        breaker.call(lambda: 1 / 0)
    with pytest.raises(tg.CircuitOpenError) as opened:
        breaker.acquire()
    assert (opened.value.state, opened.value.retry_after) == ("open", 10.0)
    clock.advance(10.0)
    probe = breaker.acquire()
    with pytest.raises(tg.CircuitOpenError) as busy:
        breaker.acquire()
    # The slot frees when the probe ends, which may be at once: the half-open timeout (60 s)
    # is no time to wait for.
    assert busy.value.state == "half_open"
    assert busy.value.retry_after is None
    assert "60.000s" in str(busy.value)
    probe.success()
    breaker.acquire().success()
    copy = pickle.loads(pickle.dumps(busy.value))
    assert (copy.state, copy.retry_after, str(copy)) == ("half_open", None, str(busy.value))


@pytest.mark.parametrize(
    "build",
    [
        lambda: tg.Backoff.exponential(1e300),
        lambda: tg.Retry(deadline=-1e300),
        lambda: tg.CircuitBreaker(failure_rate=1e300),
        lambda: tg.Hedge(0.1, budget=1e300),
    ],
)
def test_huge_numbers_print_short_in_errors(build: Callable[[], object]) -> None:
    with pytest.raises(tg.ConfigError) as info:
        build()
    assert len(str(info.value)) < 250, str(info.value)
    assert "e300" in str(info.value) or "e+300" in str(info.value)
