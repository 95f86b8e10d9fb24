"""CircuitBreaker: the rules on a manual clock, the decorator, the context managers, threads."""

from __future__ import annotations

import asyncio
import inspect
import threading
from typing import Callable, Optional

import pytest
from hypothesis import given
from hypothesis import strategies as st

import tailguard as tg
from tailguard.testing import ManualClock


def fail(exc: Callable[[], BaseException] = ConnectionError) -> None:
    raise exc()


def trip(breaker: tg.CircuitBreaker, n: int) -> None:
    for _ in range(n):
        with pytest.raises(ConnectionError):
            breaker.call(fail)


def state_now(breaker: tg.CircuitBreaker) -> str:
    """The breaker's state, read afresh. mypy keeps ``breaker.state`` (a ``Literal``) narrowed
    by an earlier comparison in the same scope, though calls in between change it; a second
    check of a changed state reads it through this function."""
    return breaker.state


def make(clock: ManualClock, **settings: object) -> tg.CircuitBreaker:
    defaults: dict[str, object] = {
        "window": 10,
        "minimum_calls": 4,
        "open_duration": 30.0,
        "half_open_calls": 2,
        "clock": clock,
    }
    defaults.update(settings)
    return tg.CircuitBreaker(**defaults)  # type: ignore[arg-type]


def test_opens_on_failure_rate_and_fails_fast() -> None:
    clock = ManualClock()
    breaker = make(clock)
    ran = 0

    @breaker
    def call() -> str:
        nonlocal ran
        ran += 1
        return "ok"

    assert call() == "ok"
    trip(breaker, 3)  # 3 of 4 failed: 75 % >= 50 %
    assert breaker.state == "open"
    with pytest.raises(tg.CircuitOpenError) as info:
        call()
    assert ran == 1
    assert info.value.retry_after == pytest.approx(30.0)
    assert isinstance(info.value, tg.TailguardError)
    metrics = breaker.metrics()
    assert (metrics.calls, metrics.failures, metrics.rejections) == (4, 3, 1)
    assert metrics.failure_rate == pytest.approx(0.75)
    assert metrics.open_for == pytest.approx(30.0)


def test_half_open_admits_exactly_the_probes_then_closes() -> None:
    clock = ManualClock()
    breaker = make(clock)
    trip(breaker, 4)
    clock.advance(30)
    first = breaker.acquire()
    second = breaker.acquire()
    assert first.is_probe and second.is_probe
    assert breaker.state == "half_open"
    with pytest.raises(tg.CircuitOpenError):
        breaker.acquire()
    first.success()
    second.success()
    assert state_now(breaker) == "closed"


def test_a_failed_probe_reopens() -> None:
    clock = ManualClock()
    breaker = make(clock, open_duration=None, open_backoff=tg.Backoff.exponential(10, jitter="none"))
    trip(breaker, 4)
    with pytest.raises(tg.CircuitOpenError) as first:
        breaker.call(lambda: None)
    clock.advance(10)
    with pytest.raises(ConnectionError):
        breaker.call(fail)
    assert breaker.state == "open"
    with pytest.raises(tg.CircuitOpenError) as second:
        breaker.call(lambda: None)
    # The open duration grows with each failed probe round: 10 s, then 20 s.
    assert (first.value.retry_after, second.value.retry_after) == (10.0, 20.0)


def test_a_released_probe_frees_its_slot() -> None:
    clock = ManualClock()
    breaker = make(clock, half_open_calls=1)
    trip(breaker, 4)
    clock.advance(30)
    probe = breaker.acquire()
    with pytest.raises(tg.CircuitOpenError):
        breaker.acquire()
    probe.release()
    breaker.acquire().success()
    assert breaker.state == "closed"


def test_a_collected_permit_is_released() -> None:
    clock = ManualClock()
    breaker = make(clock, half_open_calls=1)
    trip(breaker, 4)
    clock.advance(30)
    breaker.acquire()  # dropped at once, unreported
    breaker.acquire().success()
    assert breaker.state == "closed"


def test_exceptions_outside_on_count_as_neither() -> None:
    clock = ManualClock()
    breaker = make(clock, on=(ConnectionError,))
    for _ in range(10):
        with pytest.raises(KeyError):
            breaker.call(fail, KeyError)
    assert breaker.state == "closed"
    assert breaker.metrics().calls == 0
    predicate = make(clock, on=lambda exc: "down" in str(exc))
    for _ in range(4):
        with pytest.raises(RuntimeError):
            predicate.call(fail, lambda: RuntimeError("down"))
    assert predicate.state == "open"


@pytest.mark.parametrize("error", [KeyboardInterrupt, SystemExit])
def test_base_exceptions_never_count(error: type[BaseException]) -> None:
    breaker = make(ManualClock(), on=BaseException)
    for _ in range(6):
        with pytest.raises(error):
            breaker.call(fail, error)
    assert breaker.state == "closed"


def test_manual_controls_and_listeners() -> None:
    clock = ManualClock()
    seen: list[tg.BreakerTransition] = []
    breaker = make(clock)
    breaker.add_listener(seen.append)
    breaker.force_open()
    with pytest.raises(tg.CircuitOpenError) as info:
        breaker.call(lambda: None)
    assert info.value.retry_after is None
    breaker.disable()
    trip(breaker, 10)
    assert breaker.state == "disabled"
    breaker.reset()
    assert state_now(breaker) == "closed"
    assert [(t.from_state, t.to_state, t.reason) for t in seen] == [
        ("closed", "forced_open", "manual"),
        ("forced_open", "disabled", "manual"),
        ("disabled", "closed", "manual"),
    ]
    assert [t.generation for t in seen] == [1, 2, 3]
    assert breaker.remove_listener(seen.append) is False  # a new bound method each time
    listener = seen.append
    breaker.add_listener(listener)
    assert breaker.remove_listener(listener) is True


def test_a_failing_listener_does_not_reach_the_caller() -> None:
    reported: list[object] = []

    def broken(transition: tg.BreakerTransition) -> None:
        raise RuntimeError("listener broke")

    import sys

    previous = sys.unraisablehook
    sys.unraisablehook = reported.append
    try:
        breaker = make(ManualClock(), on_transition=broken)
        breaker.force_open()
    finally:
        sys.unraisablehook = previous
    assert breaker.state == "forced_open"
    assert len(reported) == 1


def test_context_managers_nest_and_report() -> None:
    clock = ManualClock()
    outer = make(clock)
    inner = make(clock)
    with outer:
        with pytest.raises(ConnectionError):
            with inner:
                raise ConnectionError
    assert (outer.metrics().failures, inner.metrics().failures) == (0, 1)
    assert outer.metrics().calls == 1

    async def main() -> None:
        async with outer as permit:
            assert not permit.is_probe
        with pytest.raises(ConnectionError):
            async with outer:
                raise ConnectionError

    asyncio.run(main())
    assert outer.metrics().failures == 1


def test_async_decorator() -> None:
    clock = ManualClock()
    breaker = make(clock)

    @breaker
    async def call(ok: bool) -> str:
        await asyncio.sleep(0)
        if not ok:
            raise ConnectionError
        return "ok"

    assert inspect.iscoroutinefunction(call)

    async def main() -> None:
        assert await call(True) == "ok"
        for _ in range(3):
            with pytest.raises(ConnectionError):
                await call(False)
        with pytest.raises(tg.CircuitOpenError):
            await call(True)

    asyncio.run(main())
    assert breaker.state == "open"


def test_cancelled_async_calls_count_as_neither() -> None:
    breaker = make(ManualClock(), half_open_calls=1)

    @breaker
    async def hang() -> None:
        await asyncio.sleep(10)

    async def main() -> None:
        tasks = [asyncio.ensure_future(hang()) for _ in range(5)]
        await asyncio.sleep(0.01)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(main())
    assert breaker.metrics().calls == 0


def test_decorated_methods() -> None:
    breaker = make(ManualClock())

    class Client:
        @breaker
        def get(self, key: str) -> str:
            return key.upper()

    assert Client().get("a") == "A"
    assert isinstance(Client.__dict__["get"], tg.Guarded)


def test_threads_never_exceed_the_probes() -> None:
    clock = ManualClock()
    breaker = make(clock, half_open_calls=3, half_open_timeout=1000)
    trip(breaker, 4)
    clock.advance(30)
    granted: list[tg.BreakerPermit] = []
    refused = 0
    lock = threading.Lock()
    start = threading.Barrier(8)

    def worker() -> None:
        nonlocal refused
        start.wait()
        for _ in range(200):
            try:
                permit = breaker.acquire()
            except tg.CircuitOpenError:
                with lock:
                    refused += 1
            else:
                with lock:
                    granted.append(permit)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(granted) == 3
    assert refused == 8 * 200 - 3
    for permit in granted:
        permit.success()
    assert breaker.state == "closed"


def test_threads_count_every_call_of_a_shared_breaker() -> None:
    breaker = tg.CircuitBreaker(window=1000, minimum_calls=1000, stripes=0)

    @breaker
    def ok() -> None:
        return None

    def worker() -> None:
        for _ in range(100):
            ok()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert breaker.metrics().calls == 400


@given(outcomes=st.lists(st.booleans(), min_size=1, max_size=60))
def test_rule_opens_exactly_when_the_window_rate_is_reached(outcomes: list[bool]) -> None:
    """Model check: with a count window of 10, minimum 4 calls and failure rate 0.5, the breaker
    opens at the first failure after which the last 10 outcomes hold ≥ 4 calls and ≥ 50 %
    failures, and never before."""
    clock = ManualClock()
    breaker = make(clock, window=10, minimum_calls=4, failure_rate=0.5, stripes=0)
    expected_open_at: Optional[int] = None
    for i, ok in enumerate(outcomes):
        last = outcomes[max(0, i - 9) : i + 1]
        if not ok and len(last) >= 4 and last.count(False) / len(last) >= 0.5:
            expected_open_at = i
            break
    for i, ok in enumerate(outcomes):
        if breaker.state != "closed":
            break
        if ok:
            breaker.call(lambda: None)
        else:
            with pytest.raises(ConnectionError):
                breaker.call(fail)
        should_be_open = expected_open_at is not None and i >= expected_open_at
        assert (state_now(breaker) == "open") == should_be_open, (i, outcomes)


@pytest.mark.parametrize(
    ("settings", "parameter", "error"),
    [
        ({"failure_rate": 0}, "failure_rate", ValueError),
        ({"failure_rate": 1.5}, "failure_rate", ValueError),
        ({"failure_rate": float("nan")}, "failure_rate", ValueError),
        ({"failure_rate": "half"}, "failure_rate", TypeError),
        ({"window": 0}, "window", ValueError),
        ({"window": -1}, "window", ValueError),
        ({"window": 10, "time_window": 5.0}, "time_window", ValueError),
        ({"time_window_buckets": 5}, "time_window_buckets", ValueError),
        ({"minimum_calls": 0}, "minimum_calls", ValueError),
        ({"open_duration": 0}, "open_duration", ValueError),
        ({"open_duration": -5}, "open_duration", ValueError),
        ({"open_duration": "long"}, "open_duration", TypeError),
        ({"half_open_calls": 0}, "half_open_calls", ValueError),
        ({"half_open_success_rate": 2}, "half_open_success_rate", ValueError),
        ({"slow_call_rate": 0.5}, "slow_call_rate", ValueError),
        ({"slow_call_duration": 0, "slow_call_rate": 0.5}, "slow_call_duration", ValueError),
        ({"slow_call_duration": 1.0, "slow_call_rate": 0}, "slow_call_rate", ValueError),
        ({"window": 10, "minimum_calls": 11}, "minimum_calls", ValueError),
        ({"open_backoff": tg.Backoff.exponential(5.0)}, "open_backoff", ValueError),
        ({"open_duration": tg.Backoff.exponential(5.0)}, "open_duration", TypeError),
        ({"open_backoff": 5.0}, "open_backoff", TypeError),
        (
            {"open_duration": 5.0, "open_backoff": tg.Backoff.constant(1.0, jitter="none")},
            "open_backoff",
            ValueError,
        ),
        ({"stripes": 3}, "stripes", ValueError),
        ({"on": 5}, "on", TypeError),
        ({"on_transition": 5}, "on_transition", TypeError),
    ],
)
def test_bad_settings_name_the_parameter(
    settings: dict[str, object], parameter: str, error: type[Exception]
) -> None:
    with pytest.raises(error, match=f"`{parameter}`"):
        tg.CircuitBreaker(**settings)  # type: ignore[arg-type]


def test_an_open_backoff_needs_a_jitter_that_cannot_draw_zero() -> None:
    with pytest.raises(ValueError, match='jitter="equal"'):
        tg.CircuitBreaker(open_backoff=tg.Backoff.exponential(5.0, jitter="full"))
    breaker = tg.CircuitBreaker(open_backoff=tg.Backoff.exponential(5.0, jitter="equal"))
    assert breaker.state == "closed"
