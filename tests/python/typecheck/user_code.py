"""User-style code that must pass ``mypy --strict`` and run: every setting in the form the
runtime accepts (timedeltas, numbers that are not floats, predicates), decorated functions and
methods keeping their signatures, and the ``.retry``/``.breaker``/``.hedge`` attributes.

``scripts/test`` type-checks this file with the rest of ``tests/python``; ``test_typing.py``
runs :func:`main` (the types must agree with what the runtime does) and checks that mypy finds
nothing here.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Literal, Optional

import tailguard as tg
from tailguard.testing import ManualClock

clock = ManualClock()
budget = tg.RetryBudget(Decimal("0.2"), window=timedelta(seconds=10), clock=clock)
backoff = tg.Backoff.exponential(
    timedelta(milliseconds=100), factor=Fraction(3, 2), max_delay=timedelta(seconds=10), seed=7
)


def retry_after(exc: BaseException) -> Optional[float]:
    """A predicate: wait what the server asked, or do not retry."""
    return 0.5 if isinstance(exc, ConnectionError) else None


@tg.retry(
    on=retry_after,
    attempts=3,
    deadline=timedelta(seconds=30),
    backoff=backoff,
    budget=budget,
    clock=clock,
)
def fetch(url: str, *, tries: int = 1) -> bytes:
    return url.encode() * tries


@tg.retry(deadline=timedelta(seconds=5), timeout=timedelta(seconds=1), clock=ManualClock())
async def get(key: str) -> bytes:
    return key.encode()


@tg.retry
def plain(x: int) -> str:
    return str(x)


breaker = tg.CircuitBreaker(
    failure_rate=Decimal("0.5"),
    time_window=timedelta(minutes=1),
    open_duration=timedelta(seconds=30),
    half_open_timeout=timedelta(seconds=5),
    slow_call_duration=timedelta(seconds=2),
    slow_call_rate=Fraction(1, 2),
    on=lambda exc: exc.args,  # any truthy result counts as a failure
    clock=ManualClock(),
)


@breaker
def guarded(x: int) -> int:
    return x


@breaker
async def aguarded(x: int) -> int:
    return x


hedge_policy = tg.Hedge(timedelta(milliseconds=5), budget=Fraction(1, 10))


@hedge_policy
async def hedged(x: int) -> int:
    return x


def describe(
    state: Literal["closed", "open", "half_open", "forced_open", "disabled"],
    refusing: Optional[Literal["open", "half_open", "forced_open"]] = None,
) -> str:
    """States are typed as the `Literal`s they are, so they pass where only those are taken."""
    return state if refusing is None else f"{state}, refused in {refusing}"


moves: list[str] = []


def on_transition(t: tg.BreakerTransition) -> None:
    moves.append(f"{describe(t.from_state)} -> {describe(t.to_state)}: {t.reason}")


class Service:
    """Methods decorated in the class, and policies made per instance."""

    def __init__(self) -> None:
        self.get_twice = tg.retry(attempts=2)(self._get)

    def _get(self, key: str) -> str:
        return key * 2

    @tg.retry(attempts=2)
    def method(self, key: str) -> int:
        return len(key)

    @tg.retry(attempts=2)
    async def amethod(self, key: str) -> int:
        return len(key)

    @breaker
    def bmethod(self, key: str) -> int:
        return len(key)


async def run_async() -> None:
    data: bytes = await get("k")
    assert data == b"k"
    assert await aguarded(2) == 2
    assert await hedged(3) == 3
    service = Service()
    assert await service.amethod("abc") == 3
    assert service.amethod.retry.attempts == 2
    delayed = await tg.hedge(lambda: asyncio.sleep(0, 1), delay=timedelta(milliseconds=1))
    assert delayed == 1


def main() -> None:
    data: bytes = fetch("u", tries=2)
    assert data == b"uu"
    text: str = plain(1)
    assert text == "1"
    policies: list[tg.Retry] = [fetch.retry, get.retry, plain.retry, Service.method.retry]
    assert policies[0].budget is budget
    breakers: list[tg.CircuitBreaker] = [guarded.breaker, aguarded.breaker]
    assert all(b is breaker for b in breakers)
    assert hedged.hedge is hedge_policy
    assert guarded(1) == 1
    service = Service()
    assert service.method("abcd") == 4
    assert service.method.retry.attempts == 2
    assert Service.method(service, "ab") == 2
    assert service.bmethod("a") == 1 and service.bmethod.breaker is breaker
    assert service.get_twice("x") == "xx" and service.get_twice.retry.attempts == 2
    assert fetch.__name__ == "fetch" and fetch.__wrapped__("v") == b"v"
    assert tg.Retry(on=(ConnectionError, TimeoutError)).call(plain, 2) == "2"
    assert breaker.call(guarded, 5) == 5
    assert describe(breaker.state) == "closed"
    assert describe(breaker.metrics().state) == "closed"
    watched = tg.CircuitBreaker(on_transition=on_transition)
    watched.force_open()
    assert moves == ["closed -> forced_open: manual"]
    try:
        raise tg.CircuitOpenError("refused", None, "forced_open")
    except tg.CircuitOpenError as refused:
        assert describe("open", refused.state) == "open, refused in forced_open"
    reason: Literal["exhausted", "deadline", "budget"] = tg.RetryError("x", 1, 0.0, "budget").reason
    assert reason == "budget"
    asyncio.run(run_async())


if __name__ == "__main__":
    main()
