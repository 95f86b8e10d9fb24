"""tg.Pipeline, sync: the order of the layers, the deadline decisions, the errors, the settings.
Time is virtual (a ManualClock): a "slow" attempt moves the clock itself."""

from __future__ import annotations

import datetime
import pickle
from typing import Callable

import pytest

import tailguard as tg
from tailguard.testing import ManualClock


def constant(seconds: float) -> tg.Backoff:
    return tg.Backoff.constant(seconds)


def flaky(clock: ManualClock, plan: list[float], log: list[int]) -> Callable[[], int]:
    """Attempt ``n`` takes ``abs(plan[n - 1])`` seconds and fails if that entry is negative."""

    def attempt() -> int:
        log.append(len(log) + 1)
        took = plan[len(log) - 1]
        clock.advance(abs(took))
        if took < 0:
            raise ConnectionError(f"attempt {len(log)} failed")
        return len(log)

    return attempt


def test_a_success_goes_through_every_layer_and_is_measured() -> None:
    clock = ManualClock()
    breaker = tg.CircuitBreaker(clock=clock)
    pipeline = tg.Pipeline(retry=tg.retry(attempts=3, clock=clock), breaker=breaker)

    @pipeline
    def add(a: int, b: int = 1) -> int:
        clock.advance(0.25)
        return a + b

    assert add(1, b=2) == 3
    assert add.__name__ == "add"
    assert add.pipeline is pipeline  # type: ignore[attr-defined]
    assert breaker.metrics().calls == 1
    assert pipeline.latency.count == 1
    assert pipeline.latency.quantile(1.0) == pytest.approx(0.25, rel=0.01)


def test_retries_follow_the_backoff_and_the_breaker_sees_each_attempt() -> None:
    clock = ManualClock()
    breaker = tg.CircuitBreaker(clock=clock, minimum_calls=100)
    pipeline = tg.Pipeline(
        retry=tg.retry(on=ConnectionError, attempts=4, backoff=constant(0.1), clock=clock),
        breaker=breaker,
    )
    log: list[int] = []
    start = clock.now()
    assert pipeline.call(flaky(clock, [-0.01, -0.03, 0.02], log)) == 3
    assert clock.now() - start == pytest.approx(0.01 + 0.1 + 0.03 + 0.1 + 0.02)
    metrics = breaker.metrics()
    assert (metrics.calls, metrics.failures) == (3, 2)


def test_what_is_not_retried_propagates_as_it_is_and_exhaustion_is_a_retry_error() -> None:
    clock = ManualClock()
    pipeline = tg.Pipeline(retry=tg.retry(on=ConnectionError, attempts=2, clock=clock))

    def wrong() -> None:
        raise KeyError("k")

    with pytest.raises(KeyError):
        pipeline.call(wrong)
    log: list[int] = []
    with pytest.raises(tg.RetryError) as caught:
        pipeline.call(flaky(clock, [-0.01, -0.01], log))
    assert caught.value.reason == "exhausted"
    assert isinstance(caught.value.__cause__, ConnectionError)
    assert log == [1, 2]


def test_a_deadline_passed_is_refused_before_anything_is_asked() -> None:
    clock = ManualClock()
    budget = tg.RetryBudget(0.5, min_per_second=0, clock=clock)
    breaker = tg.CircuitBreaker(clock=clock)
    pipeline = tg.Pipeline(retry=tg.retry(budget=budget), breaker=breaker)
    ran: list[int] = []
    with pipeline.scope(1.0):
        clock.advance(1.0)
        with pytest.raises(tg.DeadlineExceededError) as caught:
            pipeline.call(lambda: ran.append(1))
    assert (caught.value.reason, caught.value.attempts) == ("passed", 0)
    assert isinstance(caught.value, TimeoutError) and isinstance(caught.value, tg.TailguardError)
    assert ran == []
    assert breaker.metrics().calls == 0
    budget.deposit()  # one call at 0.5: no whole retry; had the refused call deposited, one
    assert budget.available() == 0


def test_a_backoff_past_the_deadline_is_not_taken() -> None:
    clock = ManualClock()
    pipeline = tg.Pipeline(
        retry=tg.retry(attempts=3, backoff=constant(2.0), clock=clock), deadline=1.0
    )
    log: list[int] = []
    with pytest.raises(tg.DeadlineExceededError) as caught:
        pipeline.call(flaky(clock, [-0.1, 0.1], log))
    error = caught.value
    assert (error.reason, error.attempts, error.remaining) == ("too_short", 1, 0.0)
    assert isinstance(error.__cause__, ConnectionError)
    assert log == [1]


def test_a_retry_is_not_started_when_less_time_is_left_than_predicted() -> None:
    clock = ManualClock()
    pipeline = tg.Pipeline(
        retry=tg.retry(attempts=5, backoff=constant(0.1), clock=clock),
        deadline=1.0,
        predict_floor=0.3,
    )
    log: list[int] = []
    with pytest.raises(tg.DeadlineExceededError) as caught:
        pipeline.call(flaky(clock, [-0.2, -0.2, -0.2, 0.1], log))
    # 0.2 + 0.1 leaves 0.7 ≥ 0.3: retry; 0.5 + 0.1 leaves 0.4: retry; 0.8 + 0.1 leaves 0.1 < 0.3.
    error = caught.value
    assert (error.reason, error.attempts) == ("too_short", 3)
    assert error.remaining == pytest.approx(0.1)
    assert error.predicted == pytest.approx(0.3)
    assert log == [1, 2, 3]


def test_the_prediction_is_the_percentile_once_there_are_enough_samples() -> None:
    clock = ManualClock()
    pipeline = tg.Pipeline(predict_floor=0.5, predict_min_samples=3, predict_percentile=0.5, clock=clock)
    assert pipeline.predicted_latency() == 0.5
    for seconds in (0.01, 0.02, 0.03):
        pipeline.call(clock.advance, seconds)
    assert pipeline.predicted_latency() == pytest.approx(0.02, rel=0.01)


def test_an_open_breaker_refuses_without_a_deposit_or_a_failure() -> None:
    clock = ManualClock()
    budget = tg.RetryBudget(1.0, min_per_second=0, clock=clock)
    breaker = tg.CircuitBreaker(clock=clock)
    pipeline = tg.Pipeline(retry=tg.retry(budget=budget), breaker=breaker)
    breaker.force_open()
    with pytest.raises(tg.CircuitOpenError):
        pipeline.call(lambda: 1)
    assert budget.available() == 0, "a refused call deposits nothing"
    breaker.reset()
    assert pipeline.call(lambda: 1) == 1
    assert budget.available() == 1
    assert breaker.metrics().calls == 1


def test_a_retry_the_breaker_refuses_hands_the_budget_back() -> None:
    clock = ManualClock()
    budget = tg.RetryBudget(1.0, min_per_second=0, clock=clock)
    breaker = tg.CircuitBreaker(clock=clock, window=2, minimum_calls=1, failure_rate=1.0)
    pipeline = tg.Pipeline(
        retry=tg.retry(attempts=3, budget=budget, backoff=constant(0.1)), breaker=breaker
    )
    log: list[int] = []
    with pytest.raises(tg.CircuitOpenError):
        pipeline.call(flaky(clock, [-0.1, 0.1], log))
    assert log == [1]
    assert budget.available() == 1, "the retry withdrawn for the refused attempt came back"


def test_an_empty_budget_ends_the_call() -> None:
    clock = ManualClock()
    budget = tg.RetryBudget(0.1, min_per_second=0, clock=clock)
    pipeline = tg.Pipeline(retry=tg.retry(attempts=3, budget=budget))
    log: list[int] = []
    with pytest.raises(tg.BudgetExhaustedError):
        pipeline.call(flaky(clock, [-0.1, 0.1], log))
    assert log == [1]


def test_scopes_nest_and_the_earliest_deadline_holds() -> None:
    clock = ManualClock()
    pipeline = tg.Pipeline(clock=clock, deadline=10.0)
    other = tg.Pipeline(clock=clock)
    with pipeline.scope(5.0) as outer:
        with pipeline.scope(datetime.timedelta(seconds=1)) as inner:
            assert inner == pytest.approx(clock.now() + 1.0)
            assert outer == pytest.approx(clock.now() + 5.0)
            clock.advance(2.0)
            with pytest.raises(tg.DeadlineExceededError):
                pipeline.call(lambda: 1)
            assert other.call(lambda: 2) == 2, "a scope bounds its own pipeline only"
        assert pipeline.call(lambda: 3) == 3


def test_every_invalid_setting_is_refused_naming_it() -> None:
    for settings, parameter in [
        ({"timeout": 0}, "timeout"),
        ({"deadline": -1.0}, "deadline"),
        ({"deadline": float("nan")}, "deadline"),
        ({"predict_percentile": 0.0}, "predict_percentile"),
        ({"predict_percentile": 1.5}, "predict_percentile"),
        ({"predict_floor": -0.1}, "predict_floor"),
        ({"predict_min_samples": 0}, "predict_min_samples"),
        ({"latency_window": 0}, "latency_window"),
        ({"retry": tg.retry(timeout=1.0)}, "retry"),
    ]:
        with pytest.raises(tg.ConfigError) as caught:
            tg.Pipeline(**settings)  # type: ignore[arg-type]
        assert caught.value.parameter == parameter, settings
        assert isinstance(caught.value, ValueError)
    for settings in [{"retry": 3}, {"breaker": "b"}, {"deadline": "1"}, {"clock": 1.0}]:
        with pytest.raises(TypeError):
            tg.Pipeline(**settings)  # type: ignore[arg-type]
    with pytest.raises(tg.ConfigError) as caught:
        tg.Pipeline(timeout=1.0)(lambda: 1)
    assert caught.value.parameter == "timeout"
    with pytest.raises(tg.ConfigError):
        tg.Pipeline().scope(0)


def test_the_deadline_error_pickles() -> None:
    error = tg.DeadlineExceededError("too late", "too_short", 2, 0.1, 0.3)
    again = pickle.loads(pickle.dumps(error))
    assert (again.reason, again.attempts, again.remaining, again.predicted) == (
        "too_short",
        2,
        0.1,
        0.3,
    )
    assert str(again) == "too late"


def test_testing_mode_makes_backoff_sleeps_zero() -> None:
    pipeline = tg.Pipeline(retry=tg.retry(attempts=3, backoff=constant(30.0)))
    tries: list[int] = []

    def twice() -> int:
        tries.append(1)
        if len(tries) < 2:
            raise ConnectionError
        return len(tries)

    with tg.set_testing(True):
        assert pipeline.call(twice) == 2


def test_the_decorated_sync_function_hands_its_first_failure_to_the_loop() -> None:
    clock = ManualClock()
    breaker = tg.CircuitBreaker(clock=clock, minimum_calls=100)
    pipeline = tg.Pipeline(
        retry=tg.retry(on=ConnectionError, attempts=4, backoff=constant(0.1), clock=clock),
        breaker=breaker,
        deadline=1.0,
        predict_floor=0.3,
    )
    log: list[int] = []
    attempt = flaky(clock, [-0.01, -0.03, 0.02, -0.5, -0.2, 0.1], log)

    @pipeline
    def fetch(key: str) -> str:
        return f"{key}{attempt()}"

    start = clock.now()
    assert fetch("k") == "k3"
    assert clock.now() - start == pytest.approx(0.01 + 0.1 + 0.03 + 0.1 + 0.02)
    metrics = breaker.metrics()
    assert (metrics.calls, metrics.failures) == (3, 2)
    # 0.5 then the 0.1 backoff leaves 0.4 ≥ 0.3: retry; 0.2 more leaves 0.1 < 0.3: stop.
    with pytest.raises(tg.DeadlineExceededError) as caught:
        fetch("k")
    assert (caught.value.reason, caught.value.attempts) == ("too_short", 2)
    assert breaker.metrics().failures == 4
    assert isinstance(fetch, tg.Piped)
    assert fetch.pipeline is pipeline
    assert getattr(fetch, "__name__") == "fetch"


def test_a_decorated_method_binds_to_its_instance() -> None:
    pipeline = tg.Pipeline(retry=tg.retry(attempts=2))

    class Client:
        def __init__(self) -> None:
            self.calls = 0

        @pipeline
        def get(self, key: str) -> str:
            self.calls += 1
            if self.calls < 2:
                raise ConnectionError
            return key

    client = Client()
    with tg.set_testing(True):
        assert client.get("k") == "k"
    assert client.calls == 2


def test_a_sync_attempt_that_fails_past_the_deadline_ends_the_call() -> None:
    clock = ManualClock()
    breaker = tg.CircuitBreaker(clock=clock, minimum_calls=100)
    pipeline = tg.Pipeline(retry=tg.retry(attempts=3, clock=clock), breaker=breaker, deadline=1.0)
    log: list[int] = []

    @pipeline
    def slow() -> int:
        return flaky(clock, [-1.5, 0.1], log)()

    with pytest.raises(tg.DeadlineExceededError) as caught:
        slow()
    assert (caught.value.reason, caught.value.attempts) == ("reached", 1)
    assert isinstance(caught.value.__cause__, ConnectionError)
    assert breaker.metrics().failures == 1, "the attempt ran and failed: counted"
