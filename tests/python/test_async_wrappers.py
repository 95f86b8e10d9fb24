"""The async decorators' wrappers (issue 15): compiled with the wrapped function's own parameters
when it can, they bind and fail exactly as the function does; and the breaker's, which keeps its
tickets natively instead of a permit object per call, hands every ticket back on every way out."""

from __future__ import annotations

import asyncio
import gc
import inspect
from typing import Any, Callable, Coroutine

import pytest

import tailguard as tg
from tailguard._wrap import _GENERIC, _parameters

Decorator = Callable[
    [Callable[..., Coroutine[Any, Any, Any]]], Callable[..., Coroutine[Any, Any, Any]]
]

DECORATORS: dict[str, Callable[[], Decorator]] = {
    "retry": lambda: tg.retry(on=ConnectionError, attempts=2),
    "breaker": lambda: tg.CircuitBreaker(),
}


async def shapes(a: int, /, b: int, *, c: int) -> tuple[int, int, int]:
    return (a, b, c)


MARK = object()


async def defaults(a: int, /, b: int = 1, *, c: object = MARK, d: int) -> tuple[Any, ...]:
    return (a, b, c, d)


@pytest.mark.parametrize("name", list(DECORATORS))
def test_a_wrapper_passes_the_functions_own_defaults(name: str) -> None:
    wrapped = DECORATORS[name]()(defaults)
    assert str(inspect.signature(wrapped)) == str(inspect.signature(defaults))
    got = asyncio.run(wrapped(0, d=4))
    assert got == (0, 1, MARK, 4) and got[2] is MARK
    assert asyncio.run(wrapped(0, 2, c=3, d=4)) == (0, 2, 3, 4)
    for args, kwargs in [((), {"d": 4}), ((0,), {}), ((0, 1, 2), {"d": 4}), ((), {"a": 0, "d": 4})]:
        with pytest.raises(TypeError) as ours:
            asyncio.run(wrapped(*args, **kwargs))
        with pytest.raises(TypeError) as theirs:
            asyncio.run(defaults(*args, **kwargs))
        assert str(ours.value) == str(theirs.value)


@pytest.mark.parametrize("name", list(DECORATORS))
def test_a_wrapper_binds_and_refuses_as_the_function_does(name: str) -> None:
    wrapped = DECORATORS[name]()(shapes)
    assert inspect.iscoroutinefunction(wrapped)
    assert wrapped.__name__ == "shapes"
    assert wrapped.__wrapped__ is shapes  # type: ignore[attr-defined]
    assert str(inspect.signature(wrapped)) == str(inspect.signature(shapes))
    assert asyncio.run(wrapped(1, 2, c=3)) == (1, 2, 3)
    assert asyncio.run(wrapped(1, b=2, c=3)) == (1, 2, 3)
    for args, kwargs in [((1, 2, 3), {}), ((), {"a": 1, "b": 2, "c": 3}), ((1, 2), {})]:
        with pytest.raises(TypeError) as ours:
            asyncio.run(wrapped(*args, **kwargs))
        with pytest.raises(TypeError) as theirs:
            asyncio.run(shapes(*args, **kwargs))
        assert str(ours.value) == str(theirs.value)


def test_which_functions_get_their_own_parameters() -> None:
    async def named(a: int, b: int = 2) -> None: ...
    async def star(*args: int) -> None: ...
    async def clash(fn: int, ticket: int) -> None: ...

    taken = {"fn", "ticket"}
    assert _parameters(named, taken) is not None
    assert _parameters(named, taken) != _GENERIC
    # *args needs the tuple anyway; a parameter named like one of the template's names would
    # shadow it.
    assert _parameters(star, taken) is None
    assert _parameters(clash, taken) is None


@pytest.mark.parametrize("name", list(DECORATORS))
def test_generic_wrappers_still_pass_everything_on(name: str) -> None:
    async def varied(fn: int, ticket: int = 2, *rest: int, started: int = 4, **more: int) -> Any:
        return (fn, ticket, rest, started, more)

    async def clash(fn: int, ticket: int, started: int, exc: int) -> Any:
        return (fn, ticket, started, exc)

    wrapped = DECORATORS[name]()(varied)
    assert asyncio.run(wrapped(1)) == (1, 2, (), 4, {})
    assert asyncio.run(wrapped(1, 3, 5, started=6, x=7)) == (1, 3, (5,), 6, {"x": 7})
    assert asyncio.run(DECORATORS[name]()(clash)(1, 2, 3, exc=4)) == (1, 2, 3, 4)


def test_retry_with_own_parameters_retries_with_the_same_arguments() -> None:
    seen: list[tuple[int, int]] = []

    @tg.retry(on=ConnectionError, attempts=3, backoff=tg.Backoff.constant(0.0, jitter="none"))
    async def flaky(a: int, *, b: int) -> int:
        seen.append((a, b))
        if len(seen) < 3:
            raise ConnectionError
        return a + b

    assert asyncio.run(flaky(1, b=2)) == 3
    assert seen == [(1, 2)] * 3


def test_the_breaker_hands_every_ticket_back() -> None:
    # Each way out of a call: success, a failure, an ignored exception, cancellation, and a
    # coroutine closed (or collected) while it waits. Afterwards no ticket is held: the next
    # number handed out is 0 again.
    breaker = tg.CircuitBreaker(on=ConnectionError, minimum_calls=100)
    gate = asyncio.Event()

    @breaker
    async def call(how: str) -> str:
        if how == "wait":
            await gate.wait()
        if how == "fail":
            raise ConnectionError
        if how == "other":
            raise KeyError(how)
        return how

    async def main() -> None:
        assert await call("ok") == "ok"
        with pytest.raises(ConnectionError):
            await call("fail")
        with pytest.raises(KeyError):
            await call("other")
        task = asyncio.ensure_future(call("wait"))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        suspended = call("wait")
        suspended.send(None)
        suspended.close()
        collected = call("wait")
        collected.send(None)
        del collected
        gc.collect()

    asyncio.run(main())
    metrics = breaker.metrics()
    assert (metrics.calls, metrics.failures) == (2, 1)
    number = breaker._enter()
    assert number == 0
    breaker._succeeded(number)


def test_a_cancelled_probe_frees_its_slot() -> None:
    from tailguard.testing import ManualClock

    clock = ManualClock()
    breaker = tg.CircuitBreaker(
        consecutive_failures=1, open_duration=1.0, half_open_calls=1, clock=clock
    )
    gate = asyncio.Event()

    @breaker
    async def call() -> str:
        await gate.wait()
        return "ok"

    breaker.force_open()
    breaker.reset()
    with pytest.raises(ConnectionError):
        with breaker:
            raise ConnectionError
    assert breaker.state == "open"
    clock.advance(1.0)

    async def main() -> None:
        probe = asyncio.ensure_future(call())
        await asyncio.sleep(0)
        assert breaker.state == "half_open"
        with pytest.raises(tg.CircuitOpenError):
            await call()  # the one slot is taken
        probe.cancel()
        with pytest.raises(asyncio.CancelledError):
            await probe
        gate.set()
        assert await call() == "ok"  # the slot was freed

    asyncio.run(main())
    assert breaker.metrics().state == "closed"


def test_a_wrapper_is_compiled_once_per_parameter_list() -> None:
    # Decorating again and again (a function made per request) must not compile, nor keep a
    # source in linecache, per decoration; and the kept lists are bounded.
    import linecache

    from tailguard import _breaker, _wrap

    template = _breaker._GUARDED
    breaker = tg.CircuitBreaker()
    for _ in range(50):

        async def per_request(item: int) -> int:
            return item

        breaker(per_request)
    assert [p.params for p in template._makers].count("item") == 1
    for index in range(_wrap._CACHED + 10):
        namespace: dict[str, Any] = {}
        exec(f"async def f(p{index}): return p{index}", namespace)
        assert asyncio.run(breaker(namespace["f"])(index)) == index
    assert len(template._makers) == _wrap._CACHED
    kept = [key for key in linecache.cache if key.startswith("<tailguard breaker wrapper")]
    assert len(kept) == _wrap._CACHED
