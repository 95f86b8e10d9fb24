"""Backoff: every kind and jitter, the bounds, the seeds, and the validation."""

from __future__ import annotations

import datetime
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tailguard import Backoff, ConfigError

JITTERS = ["none", "full", "equal", "decorrelated"]


def test_exponential_without_jitter_doubles_up_to_the_cap() -> None:
    backoff = Backoff.exponential(0.1, max_delay=1.0, max_retries=6, jitter="none")
    assert list(backoff) == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0])


def test_linear_and_constant() -> None:
    linear = Backoff.linear(0.5, 0.25, max_delay=1.0, max_retries=4, jitter="none")
    assert list(linear) == pytest.approx([0.5, 0.75, 1.0, 1.0])
    constant = Backoff.constant(datetime.timedelta(milliseconds=20), max_retries=3, jitter="none")
    assert list(constant) == pytest.approx([0.02, 0.02, 0.02])
    assert constant.kind == "constant" and linear.kind == "linear"


def test_iterating_twice_starts_over() -> None:
    seeded = Backoff.exponential(0.01, max_retries=8, seed=7)
    assert list(seeded) == list(seeded)
    assert seeded.take(3) == list(seeded)[:3]
    # Unseeded backoffs draw new random delays each time (16 draws collide with ~0 chance).
    unseeded = Backoff.exponential(1.0, max_retries=16)
    assert list(unseeded) != list(unseeded)


def test_same_seed_same_delays() -> None:
    a = Backoff.exponential(0.01, jitter="decorrelated", max_delay=5, max_retries=20, seed=42)
    b = Backoff.exponential(0.01, jitter="decorrelated", max_delay=5, max_retries=20, seed=42)
    c = Backoff.exponential(0.01, jitter="decorrelated", max_delay=5, max_retries=20, seed=43)
    assert list(a) == list(b)
    assert list(a) != list(c)


def test_unlimited_backoff_is_lazy() -> None:
    backoff = Backoff.exponential(0.1, max_delay=10)
    assert backoff.max_retries is None
    assert len(backoff.take(1000)) == 1000
    assert all(d <= 10 for d in backoff.take(1000))


def test_properties_and_repr() -> None:
    backoff = Backoff.exponential(0.1, factor=3, max_delay=2, max_retries=4, jitter="equal", seed=1)
    assert (backoff.base, backoff.factor, backoff.max_delay) == (0.1, 3.0, 2.0)
    assert (backoff.max_retries, backoff.jitter, backoff.seed) == (4, "equal", 1)
    assert repr(backoff).startswith("Backoff.exponential(base=0.1, factor=3")
    assert Backoff.default().max_delay == 10.0
    assert Backoff.exponential(1.0).max_delay is None


@given(
    base=st.floats(1e-6, 10.0),
    factor=st.floats(1.0, 10.0),
    cap_factor=st.floats(1.0, 100.0),
    jitter=st.sampled_from(JITTERS),
    retries=st.integers(0, 40),
    seed=st.integers(0, 2**64 - 1),
)
def test_every_delay_is_within_its_bounds(
    base: float, factor: float, cap_factor: float, jitter: str, retries: int, seed: int
) -> None:
    cap = base * cap_factor
    backoff = Backoff.exponential(
        base, factor=factor, max_delay=cap, max_retries=retries, jitter=jitter, seed=seed  # type: ignore[arg-type]
    )
    delays = list(backoff)
    assert len(delays) == retries
    tolerance = 1e-9  # the core counts whole nanoseconds
    for n, delay in enumerate(delays):
        assert 0 <= delay <= cap + tolerance
        t = min(cap, base * factor**n)
        if jitter == "none":
            assert delay == pytest.approx(t, rel=1e-6, abs=tolerance)
        elif jitter == "full":
            assert delay <= t + tolerance
        elif jitter == "equal":
            assert t / 2 - tolerance <= delay <= t + tolerance
        else:
            assert base - tolerance <= delay


@pytest.mark.parametrize(
    ("make", "parameter"),
    [
        (lambda: Backoff.exponential(-1), "base"),
        (lambda: Backoff.exponential(0), "base"),
        (lambda: Backoff.exponential(math.nan), "base"),
        (lambda: Backoff.exponential(math.inf), "base"),
        (lambda: Backoff.exponential(1e30), "base"),
        (lambda: Backoff.exponential(1, factor=0.5), "factor"),
        (lambda: Backoff.exponential(1, factor=math.nan), "factor"),
        (lambda: Backoff.exponential(2, max_delay=1), "max_delay"),
        (lambda: Backoff.exponential(1, max_retries=-1), "max_retries"),
        (lambda: Backoff.exponential(1, max_retries=2**32), "max_retries"),
        (lambda: Backoff.exponential(1, seed=-1), "seed"),
        (lambda: Backoff.exponential(1, seed=2**64), "seed"),
        (lambda: Backoff.exponential(1, jitter="wobbly"), "jitter"),  # type: ignore[arg-type]
        (lambda: Backoff.linear(1, -0.5), "step"),
        (lambda: Backoff.constant(0, jitter="decorrelated"), "base"),
        (lambda: Backoff.exponential(datetime.timedelta(seconds=-1)), "base"),
    ],
)
def test_bad_values_raise_config_error_naming_the_parameter(make: object, parameter: str) -> None:
    with pytest.raises(ValueError) as info:
        make()  # type: ignore[operator]
    assert isinstance(info.value, ConfigError)
    assert info.value.parameter == parameter
    assert f"`{parameter}`" in str(info.value)


@pytest.mark.parametrize(
    ("make", "parameter"),
    [
        (lambda: Backoff.exponential("1"), "base"),  # type: ignore[arg-type]
        (lambda: Backoff.exponential(True), "base"),
        (lambda: Backoff.exponential(1, factor="2"), "factor"),  # type: ignore[arg-type]
        (lambda: Backoff.exponential(1, max_retries=2.0), "max_retries"),  # type: ignore[arg-type]
        (lambda: Backoff.exponential(1, jitter=3), "jitter"),  # type: ignore[arg-type]
        (lambda: Backoff.exponential(1, seed="x"), "seed"),  # type: ignore[arg-type]
    ],
)
def test_wrong_types_raise_type_error_naming_the_parameter(make: object, parameter: str) -> None:
    with pytest.raises(TypeError, match=f"`{parameter}`"):
        make()  # type: ignore[operator]
