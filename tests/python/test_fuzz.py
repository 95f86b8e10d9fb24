"""Hypothesis throws arbitrary values at every constructor: the only possible outcomes are an
object, a ValueError or a TypeError. Never a Rust panic (pyo3's PanicException is a
BaseException, so it would escape `except Exception` and fail the test)."""

from __future__ import annotations

import datetime
from typing import Any, Callable

from hypothesis import given
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
