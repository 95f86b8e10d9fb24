"""Hypothesis throws arbitrary values at every constructor: the only possible outcomes are an
object, a ValueError or a TypeError. Never a Rust panic (pyo3's PanicException is a
BaseException, so it would escape `except Exception` and fail the test)."""

from __future__ import annotations

import datetime
from typing import Any, Callable

from hypothesis import given, reject, settings
from hypothesis import strategies as st

import tailguard as tg
from tailguard.testing import ManualClock

anything = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.sampled_from(["p95", "p0", "p100", "p99.9", "unlimited", "none", "full", "pxx", "p"]),
    st.timedeltas(min_value=datetime.timedelta(days=-2), max_value=datetime.timedelta(days=2)),
    st.builds(object),
    st.tuples(st.integers()),
)


def survives(make: Callable[[], Any]) -> None:
    try:
        make()
    except (ValueError, TypeError):
        pass


@given(anything, anything, anything, anything, anything)
def test_backoff_constructors(a: Any, b: Any, c: Any, d: Any, e: Any) -> None:
    survives(lambda: tg.Backoff.exponential(a, factor=b, max_delay=c, max_retries=d, seed=e))
    survives(lambda: tg.Backoff.linear(a, b, max_delay=c, max_retries=d, jitter=e))
    survives(lambda: tg.Backoff.constant(a, max_retries=b, jitter=c, seed=d))
    survives(lambda: tg.Backoff.exponential(0.1, jitter=a).take(b))


@given(anything, anything, anything, anything)
def test_retry_constructor(a: Any, b: Any, c: Any, d: Any) -> None:
    survives(lambda: tg.Retry(on=a, attempts=b, deadline=c, timeout=d))
    survives(lambda: tg.Retry(backoff=a, budget=b, on_retry=c, retry_on_timeout=d))
    survives(lambda: tg.RetryBudget(a, min_per_second=b, window=c, clock=d))


@given(anything, anything, anything, anything, anything)
def test_hedge_and_histogram_constructors(a: Any, b: Any, c: Any, d: Any, e: Any) -> None:
    survives(lambda: tg.Hedge(a, max_attempts=b, budget=c, min_samples=d, window=e))
    survives(lambda: tg.Hedge(delay_floor=a, delay_ceiling=b, window_slots=c))
    survives(lambda: tg.HedgeBudget(a, max_burst=b))
    survives(lambda: tg.RollingHistogram(a, slots=b))
    survives(lambda: tg.LatencyHistogram().record(a))
    survives(lambda: tg.LatencyHistogram().quantile(a))
    survives(lambda: tg.LatencyHistogram().record_ns(a))
    survives(lambda: ManualClock(a).advance(b))


@given(anything, anything, anything, anything, anything, anything)
def test_breaker_constructor(a: Any, b: Any, c: Any, d: Any, e: Any, f: Any) -> None:
    survives(lambda: tg.CircuitBreaker(failure_rate=a, window=b, minimum_calls=c, open_duration=d))
    survives(lambda: tg.CircuitBreaker(time_window=a, time_window_buckets=b, stripes=c))
    survives(
        lambda: tg.CircuitBreaker(
            half_open_calls=a,
            half_open_success_rate=b,
            half_open_timeout=c,
            slow_call_duration=d,
            slow_call_rate=e,
            consecutive_failures=f,
        )
    )
    survives(lambda: tg.CircuitBreaker(on=a, on_transition=b, clock=c))


@settings(max_examples=200)
@given(
    config=st.fixed_dictionaries(
        {},
        optional={
            "window": st.integers(1, 20),
            "minimum_calls": st.integers(1, 5),
            "consecutive_failures": st.integers(1, 5),
            "half_open_calls": st.integers(1, 4),
            "half_open_success_rate": st.floats(0.01, 1.0),
            "half_open_timeout": st.floats(0.001, 100.0),
            "slow_call_duration": st.floats(1e-9, 10.0),
            "stripes": st.sampled_from([0, 1, 2, 64]),
            "open_duration": st.floats(0.001, 100.0),
            "open_backoff": st.one_of(
                st.builds(
                    lambda base, jitter: tg.Backoff.exponential(base, jitter=jitter),
                    st.floats(1e-6, 10.0),
                    st.sampled_from(["none", "full", "equal", "decorrelated"]),
                ),
                st.just(tg.Backoff.constant(0, max_retries=1)),
            ),
        },
    ),
    operations=st.lists(
        st.sampled_from(
            ["acquire", "success", "failure", "release", "advance", "force_open", "disable", "reset"]
        ),
        max_size=80,
    ),
    steps=st.lists(st.floats(0.0, 1e6), min_size=1, max_size=5),
)
def test_any_sequence_of_breaker_operations(
    config: dict[str, Any], operations: list[str], steps: list[float]
) -> None:
    """Whatever the settings and the order of operations, the breaker answers or refuses;
    it never panics, and its counters stay coherent."""
    clock = ManualClock()
    try:
        breaker = tg.CircuitBreaker(clock=clock, **config)
    except ValueError:
        reject()  # an invalid combination (say, minimum_calls above the window)
    permits: list[tg.BreakerPermit] = []
    for i, operation in enumerate(operations):
        if operation == "acquire":
            try:
                permits.append(breaker.acquire())
            except tg.CircuitOpenError as exc:
                assert exc.retry_after is None or exc.retry_after >= 0
        elif operation in ("success", "failure", "release") and permits:
            getattr(permits.pop(i % len(permits)), operation)()
        elif operation == "advance":
            clock.advance(steps[i % len(steps)])
        elif operation in ("force_open", "disable", "reset"):
            getattr(breaker, operation)()
        metrics = breaker.metrics()
        assert metrics.failures <= metrics.calls
        assert breaker.state in ("closed", "open", "half_open", "forced_open", "disabled")
