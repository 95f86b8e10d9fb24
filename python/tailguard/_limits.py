"""The Python half of the overload limits: the asyncio waits, the async context managers and
the decorators the native classes do not provide themselves.

Every decision (a slot free or not, a token there or when the next comes, refuse locally or
send) is the native core's; this file only waits on the event loop and says when a call
starts and ends.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from types import TracebackType
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Optional, Type, TypeVar, Union

from tailguard import _native
from tailguard._native import BulkheadPermit, ManualClock

if TYPE_CHECKING:
    from tailguard._native import _BreakerOn, _Number, _QueueOrder, _Seconds

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])


def _wake(future: "asyncio.Future[None]") -> None:
    """Run on the event loop when a native waiter should be polled again."""
    if not future.done():
        future.set_result(None)


class Bulkhead(_native.Bulkhead):
    """At most ``max_concurrent`` calls at once; at most ``max_queue`` callers waiting for a
    slot, each at most ``max_wait`` seconds (``None``: until a slot frees).

    Use it as a decorator (sync and ``async def``), as ``with bulkhead:`` or
    ``async with bulkhead:``, or by hand with :meth:`acquire` / :meth:`acquire_async`, which
    return a :class:`BulkheadPermit` to ``release()``. A call refused raises
    :class:`~tailguard.BulkheadFullError` without running: at once when the queue is full,
    or when its wait runs out. A released slot goes to the longest waiting caller
    (``queue_order="fifo"``) or the newest (``"lifo"``, which under overload keeps the latency
    of the calls that get through low). Cancelling a waiting task leaves the queue; no slot is
    ever lost.

    >>> import tailguard as tg
    >>> pool = tg.Bulkhead(2, max_queue=8, max_wait=1.0)
    >>> @pool
    ... def query() -> str:
    ...     return "rows"
    >>> query()
    'rows'
    >>> pool.in_flight
    0
    """

    __slots__ = ()

    def __init__(
        self,
        max_concurrent: Optional[int] = None,
        *,
        max_queue: Optional[int] = None,
        queue_order: Optional[_QueueOrder] = None,
        max_wait: Optional[_Seconds] = None,
    ) -> None:
        # Everything was set up by the native __new__, from the same arguments.
        super().__init__()

    async def acquire_async(self, timeout: Optional[_Seconds] = None) -> BulkheadPermit:
        """Takes a slot, waiting on the event loop (at most ``timeout`` seconds, by default
        ``max_wait``) if every slot is taken. Raises :class:`~tailguard.BulkheadFullError`.
        Cancelling the task leaves the queue (a slot handed over meanwhile goes on)."""
        started = self._start(timeout)
        if isinstance(started, BulkheadPermit):
            return started
        waiter = started
        loop = asyncio.get_running_loop()
        try:
            while True:
                woken: asyncio.Future[None] = loop.create_future()
                permit = waiter.poll(loop, woken, _wake)
                if permit is not None:
                    return permit
                await woken
        except BaseException:
            waiter.cancel()
            raise

    async def __aenter__(self) -> None:
        self._push(await self.acquire_async())

    async def __aexit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.__exit__(exc_type, exc, tb)


def wrap_bulkhead_async(
    bulkhead: Bulkhead, fn: Callable[..., Awaitable[T]]
) -> Callable[..., Awaitable[T]]:
    """The coroutine function that calls ``fn`` holding one of ``bulkhead``'s slots."""

    @functools.wraps(fn)
    async def bulkheaded(*args: Any, **kwargs: Any) -> T:
        permit = await bulkhead.acquire_async()
        try:
            return await fn(*args, **kwargs)
        finally:
            permit.release()

    bulkheaded.bulkhead = bulkhead  # type: ignore[attr-defined]
    return bulkheaded


class RateLimiter(_native.RateLimiter):
    """At most ``rate`` calls per ``per`` seconds on average, and up to ``burst`` at once after
    a quiet spell (``burst=1``, the default, spaces calls evenly). A token bucket kept by the
    generic cell rate algorithm in the Rust core, lock-free.

    :meth:`try_acquire` never waits; :meth:`acquire` and :meth:`acquire_async` wait for the
    next token, at most ``timeout`` (by default ``max_wait``; ``None``: as long as it takes),
    and raise :class:`~tailguard.RateLimitedError` at once if it would come later. Use it as a
    decorator (sync and ``async def``) or as ``with limiter:`` / ``async with limiter:``, which
    wait the same way. With a :class:`~tailguard.testing.ManualClock`, waits advance the clock
    instead of sleeping.

    >>> import tailguard as tg
    >>> clock = tg.ManualClock()
    >>> limiter = tg.RateLimiter(10, per=1.0, burst=2, clock=clock)
    >>> [limiter.try_acquire() for _ in range(3)]
    [True, True, False]
    >>> limiter.acquire()  # waits for the next token: 0.1 s on the manual clock
    >>> round(clock.now(), 3)
    0.1
    """

    __slots__ = ()

    def __init__(
        self,
        rate: int,
        per: Optional[_Seconds] = None,
        *,
        burst: Optional[int] = None,
        max_wait: Optional[_Seconds] = None,
        clock: Optional[ManualClock] = None,
    ) -> None:
        super().__init__()

    async def acquire_async(self, n: int = 1, timeout: Optional[_Seconds] = None) -> None:
        """Takes ``n`` tokens, sleeping on the event loop until they come (at most
        ``timeout``, by default ``max_wait``). Holds nothing while it waits."""
        deadline = self._deadline(timeout)
        while True:
            wait = self._step(n, deadline)
            if wait is None:
                return
            await asyncio.sleep(wait)

    def __enter__(self) -> None:
        self.acquire()

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        return None

    async def __aenter__(self) -> None:
        await self.acquire_async()

    async def __aexit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        return None

    def __call__(self, fn: F) -> F:
        """Decorates ``fn`` (sync or ``async def``): each call takes a token first."""
        limiter = self
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def limited_async(*args: Any, **kwargs: Any) -> Any:
                await limiter.acquire_async()
                return await fn(*args, **kwargs)

            limited_async.limiter = limiter  # type: ignore[attr-defined]
            return limited_async  # type: ignore[return-value]
        return self._wrap_sync(fn)  # type: ignore[return-value]


class KeyedRateLimiter(_native.KeyedRateLimiter):
    """A rate limiter with one bucket per key (a ``str``, ``int`` or ``bytes``: a client, a
    host), each with the same ``rate``, ``per`` and ``burst``, in bounded memory: at most
    ``max_keys`` keys are remembered; a key whose bucket has refilled is forgotten (which
    changes no decision), and when a shard is full of active keys the one closest to full
    makes room (its owner may get one extra burst; new keys are never refused for lack of
    room).

    >>> import tailguard as tg
    >>> per_client = tg.KeyedRateLimiter(1, per=1.0, clock=tg.ManualClock())
    >>> per_client.try_acquire("alice"), per_client.try_acquire("alice"), per_client.try_acquire("bob")
    (True, False, True)
    """

    __slots__ = ()

    def __init__(
        self,
        rate: int,
        per: Optional[_Seconds] = None,
        *,
        burst: Optional[int] = None,
        max_keys: Optional[int] = None,
        shards: Optional[int] = None,
        max_wait: Optional[_Seconds] = None,
        clock: Optional[ManualClock] = None,
    ) -> None:
        super().__init__()

    async def acquire_async(
        self, key: Union[str, int, bytes], n: int = 1, timeout: Optional[_Seconds] = None
    ) -> None:
        """Takes ``n`` tokens from ``key``'s bucket, sleeping on the event loop until they come
        (at most ``timeout``, by default ``max_wait``). Holds nothing while it waits."""
        deadline = self._deadline(timeout)
        while True:
            wait = self._step(key, n, deadline)
            if wait is None:
                return
            await asyncio.sleep(wait)

    def limit(self, key: Callable[..., Union[str, int, bytes]]) -> Callable[[F], F]:
        """A decorator (sync or ``async def``): each call takes a token from the bucket of
        ``key(*args, **kwargs)`` first, waiting at most ``max_wait``.

        >>> import tailguard as tg
        >>> per_user = tg.KeyedRateLimiter(1, per=60.0, max_wait=0, clock=tg.ManualClock())
        >>> @per_user.limit(lambda user: user)
        ... def greet(user: str) -> str:
        ...     return "hi " + user
        >>> greet("ann"), greet("bob")
        ('hi ann', 'hi bob')
        >>> greet("ann")
        Traceback (most recent call last):
        ...
        tailguard._errors.RateLimitedError: rate limited: the next token comes in 60s, after the call's deadline
        """
        limiter = self

        def decorate(fn: F) -> F:
            if inspect.iscoroutinefunction(fn):

                @functools.wraps(fn)
                async def limited_async(*args: Any, **kwargs: Any) -> Any:
                    await limiter.acquire_async(key(*args, **kwargs))
                    return await fn(*args, **kwargs)

                limited_async.limiter = limiter  # type: ignore[attr-defined]
                return limited_async  # type: ignore[return-value]

            @functools.wraps(fn)
            def limited(*args: Any, **kwargs: Any) -> Any:
                limiter.acquire(key(*args, **kwargs))
                return fn(*args, **kwargs)

            limited.limiter = limiter  # type: ignore[attr-defined]
            return limited  # type: ignore[return-value]

        return decorate


class Throttle(_native.Throttle):
    """Client-side adaptive throttling (the SRE book's "Handling Overload"): refuses requests
    locally, without sending them, with probability
    ``max(0, (requests - k * accepts) / (requests + 1))`` over the last ``window`` seconds
    (default 120, in ``buckets`` steps), so that while the backend rejects requests the client
    sends only about ``k`` (default 2) times what it accepts.

    A refusal raises :class:`~tailguard.ThrottledError` and counts as a request not accepted.
    Use it as a decorator (sync and ``async def``) or ``with throttle:`` /
    ``async with throttle:``: a call that raises an exception matching ``on`` (default: every
    ``Exception``; name the backend's overload errors, such as a 503) counts as not accepted,
    any other outcome as accepted; cancellation counts as nothing. By hand: :meth:`acquire`,
    then :meth:`record`. ``seed`` makes the random draws replay exactly.

    >>> import tailguard as tg
    >>> throttle = tg.Throttle(k=2.0, seed=1, clock=tg.ManualClock())
    >>> for _ in range(100):
    ...     throttle.record(accepted=False)
    >>> throttle.rejection_probability > 0.9
    True
    """

    __slots__ = ()

    def __init__(
        self,
        k: Optional[_Number] = None,
        *,
        window: Optional[_Seconds] = None,
        buckets: Optional[int] = None,
        seed: Optional[int] = None,
        on: Optional[_BreakerOn] = None,
        clock: Optional[ManualClock] = None,
    ) -> None:
        super().__init__()

    async def __aenter__(self) -> None:
        self.acquire()

    async def __aexit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.__exit__(exc_type, exc, tb)

    def __call__(self, fn: F) -> F:
        """Decorates ``fn`` (sync or ``async def``): each call is decided, then recorded."""
        throttle = self
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def throttled_async(*args: Any, **kwargs: Any) -> Any:
                throttle.acquire()
                try:
                    result = await fn(*args, **kwargs)
                except Exception as exc:
                    throttle._finish(exc)
                    raise
                throttle._finish(None)
                return result

            throttled_async.throttle = throttle  # type: ignore[attr-defined]
            return throttled_async  # type: ignore[return-value]

        @functools.wraps(fn)
        def throttled(*args: Any, **kwargs: Any) -> Any:
            throttle.acquire()
            try:
                result = fn(*args, **kwargs)
            except Exception as exc:
                throttle._finish(exc)
                raise
            throttle._finish(None)
            return result

        throttled.throttle = throttle  # type: ignore[attr-defined]
        return throttled  # type: ignore[return-value]


__all__ = ["Bulkhead", "KeyedRateLimiter", "RateLimiter", "Throttle", "wrap_bulkhead_async"]
