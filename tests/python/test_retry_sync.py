"""@tailguard.retry on sync functions: the loop runs in Rust."""

from __future__ import annotations

import functools
import threading
import time
import signal
from typing import Callable, Optional

import pytest

import tailguard as tg
from tailguard.testing import ManualClock, set_testing

FAST = tg.Backoff.constant(0.001, jitter="none")


class Flaky:
    """Fails with `error` the first `failures` calls, then returns the call count."""

    def __init__(
        self, failures: int, error: Callable[[], BaseException] = ConnectionError
    ) -> None:
        self.failures = failures
        self.error = error
        self.calls = 0

    def __call__(self, *args: object, **kwargs: object) -> int:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error()
        return self.calls


def test_first_try_success_calls_once_and_passes_arguments() -> None:
    seen = []

    @tg.retry(on=ConnectionError)
    def add(a: int, b: int = 0, *, c: int = 0) -> int:
        seen.append((a, b, c))
        return a + b + c

    assert add(1, 2, c=3) == 6
    assert seen == [(1, 2, 3)]


def test_bare_decorator_and_metadata() -> None:
    @tg.retry
    def documented(x: int) -> int:
        """Doubles x."""
        return 2 * x

    assert documented(4) == 8
    assert documented.__name__ == "documented"
    assert documented.__doc__ == "Doubles x."
    assert documented.__wrapped__(5) == 10
    assert isinstance(documented, tg.Retrying)
    assert documented.retry.attempts == 3


def test_retries_until_success() -> None:
    flaky = Flaky(2)
    wrapped = tg.retry(on=ConnectionError, attempts=3, backoff=FAST)(flaky)
    assert wrapped() == 3
    assert flaky.calls == 3


def test_gives_up_with_retry_error_chaining_the_last_exception() -> None:
    flaky = Flaky(10)
    wrapped = tg.retry(on=ConnectionError, attempts=4, backoff=FAST)(flaky)
    with pytest.raises(tg.RetryError) as info:
        wrapped()
    err = info.value
    assert flaky.calls == 4
    assert (err.attempts, err.reason) == (4, "exhausted")
    assert isinstance(err.__cause__, ConnectionError)
    assert err.last_exception is err.__cause__
    assert err.elapsed >= 3 * 0.001
    assert "gave up after 4 attempts" in str(err) and "`attempts`" in str(err)
    assert isinstance(err, tg.TailguardError)


def test_backoff_max_retries_also_limits_attempts() -> None:
    flaky = Flaky(10)
    backoff = tg.Backoff.constant(0, max_retries=1)
    with pytest.raises(tg.RetryError):
        tg.retry(attempts=10, backoff=backoff)(flaky)()
    assert flaky.calls == 2


def test_exceptions_not_in_on_are_reraised_unwrapped_at_once() -> None:
    flaky = Flaky(10, KeyError)
    wrapped = tg.retry(on=(ConnectionError, TimeoutError), backoff=FAST)(flaky)
    with pytest.raises(KeyError):
        wrapped()
    assert flaky.calls == 1


@pytest.mark.parametrize("error", [KeyboardInterrupt, SystemExit, GeneratorExit])
def test_base_exceptions_are_never_retried_even_with_on_base_exception(
    error: Callable[[], BaseException],
) -> None:
    flaky = Flaky(10, error)
    wrapped = tg.retry(on=BaseException, attempts=5, backoff=FAST)(flaky)
    with pytest.raises(error):  # type: ignore[call-overload]
        wrapped()
    assert flaky.calls == 1


def test_predicate_decides_and_can_ask_for_a_delay() -> None:
    events: list[tg.RetryEvent] = []

    def transient(exc: BaseException) -> float | bool:
        if isinstance(exc, TimeoutError):
            return 0.002  # a server's Retry-After, in seconds
        return isinstance(exc, ConnectionError)

    errors: list[BaseException] = [TimeoutError(), ConnectionError(), ValueError()]

    def call() -> None:
        raise errors.pop(0)

    wrapped = tg.retry(on=transient, attempts=5, backoff=FAST, on_retry=events.append)(call)
    with pytest.raises(ValueError):
        wrapped()
    assert [e.attempt for e in events] == [1, 2]
    assert events[0].delay == pytest.approx(0.002)
    assert events[1].delay == pytest.approx(0.001)
    assert isinstance(events[0].exception, TimeoutError)
    assert events[1].elapsed >= 0.002


def test_a_predicate_returning_nonsense_raises_type_error() -> None:
    def nonsense(exc: BaseException) -> str:
        return "yes"

    wrapped = tg.retry(on=nonsense, backoff=FAST)(Flaky(1))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="predicate"):
        wrapped()


def test_a_failing_hook_stops_the_loop_with_its_exception() -> None:
    def hook(event: tg.RetryEvent) -> None:
        raise RuntimeError("hook broke")

    flaky = Flaky(5)
    with pytest.raises(RuntimeError, match="hook broke"):
        tg.retry(backoff=FAST, on_retry=hook)(flaky)()
    assert flaky.calls == 1


def test_methods_static_and_class_methods() -> None:
    class Client:
        def __init__(self) -> None:
            self.flaky = Flaky(1)

        @tg.retry(on=ConnectionError, backoff=FAST)
        def get(self, key: str) -> str:
            return f"{key}:{self.flaky()}"

        @staticmethod
        @tg.retry(backoff=FAST)
        def static(x: int) -> int:
            return x + 1

        @classmethod
        @tg.retry(backoff=FAST)
        def named(cls, x: int) -> str:
            return f"{cls.__name__}{x}"

    client = Client()
    assert client.get("k") == "k:2"
    assert Client.get(client, "j") == "j:3"
    # mypy binds a descriptor as an instance method even under @staticmethod or @classmethod
    # (it applies `__get__` whatever wraps it); the runtime binds as those say.
    assert Client.static(1) == 2 and client.static(2) == 3  # type: ignore[call-arg]
    assert Client.named(1) == "Client1"  # type: ignore[call-arg, arg-type]


def test_deadline_on_a_manual_clock_without_sleeping() -> None:
    clock = ManualClock()
    flaky = Flaky(100)
    policy = tg.retry(
        attempts=100,
        deadline=10.0,
        backoff=tg.Backoff.constant(3.0, jitter="none"),
        clock=clock,
    )
    started = time.monotonic()
    with pytest.raises(tg.RetryError) as info:
        policy(flaky)()
    # Attempts at 0, 3, 6 and 9 s of virtual time; the next would start at 12 s > 10 s.
    assert flaky.calls == 4
    assert info.value.reason == "deadline"
    assert info.value.elapsed == pytest.approx(9.0)
    assert clock.now() == pytest.approx(9.0)
    assert time.monotonic() - started < 1.0


def test_testing_mode_makes_long_backoffs_instant() -> None:
    flaky = Flaky(4)
    wrapped = tg.retry(attempts=5, backoff=tg.Backoff.constant(30.0))(flaky)
    started = time.monotonic()
    with set_testing(True):
        assert tg.is_testing()
        assert wrapped() == 5
    assert not tg.is_testing()
    assert time.monotonic() - started < 1.0


def test_set_testing_as_a_plain_call_stays_and_tells_the_previous_setting() -> None:
    assert tg.set_testing(True).previous is False
    assert tg.is_testing()
    assert tg.set_testing(False).previous is True
    assert not tg.is_testing()


def test_budget_refusal_raises_budget_exhausted_error() -> None:
    clock = ManualClock()
    budget = tg.RetryBudget(0.1, min_per_second=0, window=10.0, clock=clock)

    @tg.retry(budget=budget, backoff=FAST)
    def ok() -> str:
        return "ok"

    for _ in range(20):
        ok()  # 20 calls deposit 2 retries' worth
    assert budget.available() == 2
    flaky = Flaky(100)
    policy = tg.Retry(attempts=10, budget=budget, backoff=FAST)
    failing = policy(flaky)
    with pytest.raises(tg.BudgetExhaustedError) as info:
        failing()
    assert isinstance(info.value, tg.RetryError)
    assert info.value.reason == "budget"
    # One call: its own deposit (0.1) does not make a whole retry; the 2 saved ones are spent.
    assert flaky.calls == 3
    assert policy.clock is not None  # it follows the budget's manual clock


def test_a_budget_on_another_clock_is_refused() -> None:
    budget = tg.RetryBudget(clock=ManualClock())
    with pytest.raises(tg.ConfigError) as info:
        tg.Retry(budget=budget, clock=ManualClock())
    assert info.value.parameter == "budget"


def test_timeout_is_refused_for_sync_functions() -> None:
    with pytest.raises(tg.ConfigError) as info:
        tg.retry(timeout=1.0)(lambda: None)
    assert info.value.parameter == "timeout"


def test_call_runs_once_without_decorating() -> None:
    flaky = Flaky(1)
    assert tg.Retry(backoff=FAST).call(flaky, 1, key="v") == 2


@pytest.mark.skipif(not hasattr(signal, "pthread_kill"), reason="needs POSIX signals")
def test_sleep_is_interrupted_by_keyboard_interrupt() -> None:
    wrapped = tg.retry(attempts=3, backoff=tg.Backoff.constant(30.0, jitter="none"))(Flaky(10))
    main = threading.get_ident()
    # A real SIGINT sent to the main thread, as Ctrl-C would: it must cut the 30 s sleep short.
    timer = threading.Timer(0.1, signal.pthread_kill, (main, signal.SIGINT))
    started = time.monotonic()
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            wrapped()
    finally:
        timer.cancel()
    assert time.monotonic() - started < 5.0


def test_retrying_from_many_threads() -> None:
    budget = tg.RetryBudget(1.0, min_per_second=0)
    wrapped = tg.retry(attempts=3, backoff=tg.Backoff.constant(0), budget=budget)

    results: list[Optional[int]] = []
    lock = threading.Lock()

    def worker() -> None:
        flaky = Flaky(1)
        value = wrapped(flaky)()
        with lock:
            results.append(value)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert results == [2] * 8


def test_repr_and_properties() -> None:
    policy = tg.Retry(on=(KeyError,), attempts=4, deadline=2.5)
    assert policy.on == (KeyError,)
    assert (policy.attempts, policy.deadline, policy.timeout) == (4, 2.5, None)
    assert policy.budget is None and policy.clock is None
    assert "attempts=4" in repr(policy)
    # A function generic over a ParamSpec: mypy cannot infer the parameters it takes.
    assert repr(tg.retry(policy.call)).startswith("<retrying")  # type: ignore[arg-type]
    partial = functools.partial(lambda x: x, 3)
    assert tg.retry(partial)() == 3


@pytest.mark.parametrize(
    ("settings", "parameter", "error"),
    [
        ({"attempts": 0}, "attempts", ValueError),
        ({"attempts": -3}, "attempts", ValueError),
        ({"attempts": 1.5}, "attempts", TypeError),
        ({"deadline": 0}, "deadline", ValueError),
        ({"deadline": -1.0}, "deadline", ValueError),
        ({"timeout": float("nan")}, "timeout", ValueError),
        ({"on": ()}, "on", ValueError),
        ({"on": (KeyError, 3)}, "on", TypeError),
        ({"on": "KeyError"}, "on", TypeError),
        ({"backoff": 1.0}, "backoff", TypeError),
        ({"budget": 0.2}, "budget", TypeError),
        ({"on_retry": 3}, "on_retry", TypeError),
        ({"retry_on_timeout": 1}, "retry_on_timeout", TypeError),
        ({"clock": "now"}, "clock", TypeError),
    ],
)
def test_bad_settings_name_the_parameter(
    settings: dict[str, object], parameter: str, error: type[Exception]
) -> None:
    with pytest.raises(error, match=f"`{parameter}`"):
        tg.Retry(**settings)  # type: ignore[arg-type]
