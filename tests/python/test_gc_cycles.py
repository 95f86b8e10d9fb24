"""Reference cycles through tailguard's native objects are collected.

A service object that holds its own policies (a breaker whose listener is one of its methods, a
retry whose hook or wrapped function is one) forms a reference cycle through a native object.
Python's cycle collector can only free it if every native object in the cycle reports what it
holds (``__traverse__``) and the cycle can be broken (``__clear__``). Each test builds one such
service, drops it, runs ``gc.collect()`` and checks the instance is gone.
"""

from __future__ import annotations

import asyncio
import gc
import weakref
from typing import Any, Callable

import pytest

import tailguard as tg
from tailguard.testing import set_testing


def assert_collected(make: Callable[[], object]) -> None:
    """`make()`'s object, once dropped, is freed by the cycle collector."""
    obj = make()
    ref = weakref.ref(obj)
    del obj
    gc.collect()
    assert ref() is None, "the object was kept alive by a cycle the collector cannot see"


def test_breaker_on_transition_method() -> None:
    class Service:
        def __init__(self) -> None:
            self.breaker = tg.CircuitBreaker(on_transition=self.changed)
            self.seen: list[tg.BreakerTransition] = []

        def changed(self, transition: tg.BreakerTransition) -> None:
            self.seen.append(transition)

    assert_collected(Service)


def test_breaker_listener_that_refers_back_to_its_breaker() -> None:
    class Marker:
        """Kept alive only by the listener, so it lives exactly as long as the cycle."""

    def make() -> Marker:
        marker = Marker()
        breaker = tg.CircuitBreaker()
        breaker.add_listener(lambda transition: (breaker.metrics(), marker))
        return marker

    assert_collected(make)


def test_breaker_listener_method_after_a_transition() -> None:
    class Service:
        def __init__(self) -> None:
            self.breaker = tg.CircuitBreaker()
            self.breaker.add_listener(self.changed)
            self.seen: list[tg.BreakerTransition] = []
            self.breaker.force_open()

        def changed(self, transition: tg.BreakerTransition) -> None:
            self.seen.append(transition)

    service = Service()
    assert len(service.seen) == 1
    del service
    assert_collected(Service)


def test_breaker_on_predicate_method() -> None:
    class Service:
        def __init__(self) -> None:
            self.breaker = tg.CircuitBreaker(on=self.is_failure)

        def is_failure(self, exc: BaseException) -> bool:
            return isinstance(exc, ConnectionError)

    assert_collected(Service)


def test_retry_on_retry_method() -> None:
    class Service:
        def __init__(self) -> None:
            self.policy = tg.Retry(on_retry=self.hook)

        def hook(self, event: tg.RetryEvent) -> None:
            pass

    assert_collected(Service)


def test_retry_on_predicate_method() -> None:
    class Service:
        def __init__(self) -> None:
            self.policy = tg.Retry(on=self.retryable)

        def retryable(self, exc: BaseException) -> bool:
            return True

    assert_collected(Service)


def test_retry_wrapping_a_method_of_its_owner() -> None:
    class Service:
        def __init__(self) -> None:
            self.get = tg.retry(attempts=2)(self._get)

        def _get(self) -> int:
            return 1

    def make() -> object:
        service = Service()
        assert service.get() == 1
        return service

    assert_collected(make)


def test_async_retry_wrapping_a_method_of_its_owner() -> None:
    class Service:
        def __init__(self) -> None:
            self.get = tg.retry(attempts=2)(self._get)

        async def _get(self) -> int:
            return 1

    def make() -> object:
        service = Service()
        assert asyncio.run(service.get()) == 1
        return service

    assert_collected(make)


def test_breaker_wrapping_a_method_of_its_owner() -> None:
    class Service:
        def __init__(self) -> None:
            self.breaker = tg.CircuitBreaker()
            self.get = self.breaker(self._get)

        def _get(self) -> int:
            return 1

    def make() -> object:
        service = Service()
        assert service.get() == 1
        return service

    assert_collected(make)


def test_standalone_breaker_wrapping_a_method_of_its_owner() -> None:
    class Service:
        def __init__(self) -> None:
            self.get = tg.CircuitBreaker()(self._get)

        def _get(self) -> int:
            return 1

    assert_collected(Service)


def test_permit_held_by_the_service_its_breaker_reports_to() -> None:
    class Service:
        def __init__(self) -> None:
            self.breaker = tg.CircuitBreaker(on_transition=self.changed)
            self.permit = self.breaker.acquire()

        def changed(self, transition: tg.BreakerTransition) -> None:
            pass

    assert_collected(Service)


def test_retry_events_kept_by_the_hook() -> None:
    # The event holds the exception, whose traceback holds the failing frame, whose `self` holds
    # the events.
    class Service:
        def __init__(self) -> None:
            self.events: list[tg.RetryEvent] = []
            self.calls = 0
            self.get = tg.retry(attempts=2, on_retry=self.events.append)(self._get)

        def _get(self) -> int:
            self.calls += 1
            if self.calls == 1:
                raise ConnectionError("once")
            return self.calls

    def make() -> object:
        service = Service()
        with set_testing(True):
            assert service.get() == 2
        assert len(service.events) == 1
        return service

    assert_collected(make)


@pytest.mark.parametrize("deadline", [None, 10.0])
def test_async_retry_run_holding_a_failed_attempt(deadline: Any) -> None:
    # An exception kept by the call's native state refers (through its traceback) to the frame
    # that holds that state.
    class Service:
        def __init__(self) -> None:
            self.calls = 0
            self.get = tg.retry(attempts=3, deadline=deadline)(self._get)

        async def _get(self) -> int:
            self.calls += 1
            if self.calls < 3:
                raise ConnectionError("not yet")
            return self.calls

    def make() -> object:
        service = Service()
        with set_testing(True):
            assert asyncio.run(service.get()) == 3
        return service

    assert_collected(make)
