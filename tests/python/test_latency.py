"""LatencyHistogram and RollingHistogram: precision, concurrency, the window."""

from __future__ import annotations

import datetime
import math
import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

import tailguard as tg
from tailguard.testing import ManualClock

RELATIVE_ERROR = 1 / 128


@given(
    samples=st.lists(st.floats(1e-9, 1e4), min_size=1, max_size=300),
    p=st.floats(0.0, 1.0),
)
def test_quantiles_are_within_the_relative_error(samples: list[float], p: float) -> None:
    histogram = tg.LatencyHistogram()
    for sample in samples:
        histogram.record(sample)
    ordered = sorted(samples)
    rank = max(1, math.ceil(p * len(ordered)))
    exact = ordered[rank - 1]
    got = histogram.quantile(p)
    assert got is not None
    # Within the bucket error, plus a nanosecond for the whole-nanosecond conversion.
    assert abs(got - exact) <= exact * RELATIVE_ERROR + 2e-9
    assert histogram.count == len(samples)
    assert histogram.min == pytest.approx(min(samples), abs=1e-9)
    assert histogram.max == pytest.approx(max(samples), abs=1e-9)


def test_empty_histogram_and_units() -> None:
    histogram = tg.LatencyHistogram()
    assert histogram.quantile(0.5) is None and histogram.min is None and histogram.mean is None
    histogram.record(datetime.timedelta(milliseconds=3))
    histogram.record_ns(1_000_000)
    histogram.record(2)
    assert len(histogram) == 3
    assert histogram.quantile(0.0) == pytest.approx(0.001)
    assert histogram.quantile(1.0) == pytest.approx(2.0)
    assert histogram.mean == pytest.approx((0.003 + 0.001 + 2) / 3, rel=RELATIVE_ERROR)
    assert "count=3" in repr(histogram)


def test_merge_and_reset() -> None:
    a, b = tg.LatencyHistogram(), tg.LatencyHistogram()
    for ms in range(1, 51):
        a.record(ms / 1000)
        b.record((ms + 50) / 1000)
    a.merge(b)
    assert a.count == 100
    assert a.quantile(0.99) == pytest.approx(0.099, rel=RELATIVE_ERROR)
    a.reset()
    assert a.count == 0
    with pytest.raises(TypeError, match="`other`"):
        a.merge(object())  # type: ignore[arg-type]


def test_threads_recording_at_once_lose_nothing() -> None:
    histogram = tg.LatencyHistogram()

    def worker(offset: int) -> None:
        for i in range(2000):
            histogram.record((offset + i) * 1e-6)

    threads = [threading.Thread(target=worker, args=(k * 2000,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert histogram.count == 8000
    assert histogram.max == pytest.approx(7999e-6)


@pytest.mark.parametrize(
    ("call", "parameter", "error"),
    [
        (lambda h: h.record(-1.0), "seconds", ValueError),
        (lambda h: h.record(float("nan")), "seconds", ValueError),
        (lambda h: h.record("1"), "seconds", TypeError),
        (lambda h: h.quantile(1.5), "p", ValueError),
        (lambda h: h.quantile(None), "p", TypeError),
        (lambda h: h.record_ns(-1), "nanos", ValueError),
    ],
)
def test_bad_input_names_the_parameter(call: object, parameter: str, error: type[Exception]) -> None:
    with pytest.raises(error, match=f"`{parameter}`"):
        call(tg.LatencyHistogram())  # type: ignore[operator]


def test_rolling_histogram_forgets_old_samples() -> None:
    clock = ManualClock()
    recent = tg.RollingHistogram(10.0, slots=10, clock=clock)
    assert recent.window == 10.0
    recent.record(0.5)
    clock.advance(5)
    recent.record(0.1)
    assert recent.count == 2
    assert recent.quantile(1.0) == pytest.approx(0.5, rel=RELATIVE_ERROR)
    clock.advance(6)  # the 0.5 s sample's slice has left the window
    assert recent.count == 1
    assert recent.quantile(1.0) == pytest.approx(0.1, rel=RELATIVE_ERROR)
    clock.advance(100)
    assert recent.count == 0 and recent.quantile(0.5) is None


def test_rolling_histogram_validation() -> None:
    with pytest.raises(ValueError, match="`slots`"):
        tg.RollingHistogram(10.0, slots=0)
    with pytest.raises(ValueError, match="`window`"):
        tg.RollingHistogram(0)


def test_system_clock_samples_are_in_the_window_at_once_for_coarse_and_precise_slices() -> None:
    # 1 s slices record with the coarse clock (its tick, 1-4 ms, is at most 1/25 of a slice),
    # 78 ms slices with the precise one: either way a sample counts at once, never behind.
    for window, slots in ((10.0, 10), (5.0, 64)):
        recent = tg.RollingHistogram(window, slots=slots)
        for _ in range(100):
            recent.record(0.002)
        assert recent.count == 100
        assert recent.quantile(0.5) == pytest.approx(0.002, rel=0.05)
