"""Hedging for asyncio: :func:`hedge`, and the loop behind it and behind ``Hedge.run`` and a
``@Hedge`` decorated function (tasks, waiting and cancelling). Every decision (when to hedge,
whether the budget allows, what latency to learn) is made by the native ``Hedge`` policy."""

from __future__ import annotations

import asyncio
import functools
import weakref
from typing import (
    TYPE_CHECKING,
    Any,
    Awaitable,
    Callable,
    Literal,
    Optional,
    Sequence,
    TypeVar,
    Union,
    overload,
)

from tailguard._errors import AllFailedError, ConfigError
from tailguard._native import Hedge, HedgeBudget
from tailguard._tasks import cancel_and_wait, start_leg

if TYPE_CHECKING:
    from tailguard._native import _Number, _Seconds

T = TypeVar("T")
Target = TypeVar("Target")


async def run_hedged(policy: Hedge, factory: Callable[[], Awaitable[T]]) -> T:
    """One hedged call: the primary now, a hedge whenever the delay passes since the latest
    attempt started (or at once after a failure), while ``max_attempts`` and the budget allow.
    The first success wins; every other attempt is cancelled before this returns.

    Every decision is the native per-call state's (:class:`tailguard._native.HedgeCall`, on the
    policy's clock): this loop only starts, waits for and cancels tasks.

    If every attempt fails: a call that made one attempt (no hedge was sent) raises that
    attempt's own exception, as the unhedged call would; a call that made several raises
    :class:`AllFailedError` with all of them, the last as its ``__cause__``."""
    call = policy._start()
    primary: asyncio.Future[T] = start_leg(factory())
    # Each attempt in flight, and its number (1 is the primary).
    running: dict[asyncio.Future[T], int] = {primary: 1}
    errors: list[BaseException] = []

    def hedge() -> None:
        attempt = call.try_hedge()
        if attempt is not None:
            running[start_leg(factory())] = attempt

    try:
        while True:
            done, _ = await asyncio.wait(
                running, timeout=call.timeout(), return_when=asyncio.FIRST_COMPLETED
            )
            if not done:
                hedge()
                continue
            failed = False
            for task in done:
                attempt = running.pop(task)
                if task.cancelled():
                    call.done(attempt, False)
                    errors.append(asyncio.CancelledError())
                    failed = True
                    continue
                exc = task.exception()
                call.done(attempt, exc is None)
                if exc is None:
                    return task.result()
                errors.append(exc)
                failed = True
            if failed:
                hedge()
            if not running:
                if call.attempts == 1:
                    # Nothing was hedged: the call fails as the unhedged call would. Its
                    # traceback will hold this frame, so no local may refer to it (directly or
                    # through its task): that cycle would keep the attempt's frames alive.
                    only = errors.pop()
                    done.clear()
                    del primary, task
                    exc = None
                    try:
                        raise only
                    finally:
                        del only
                raise AllFailedError(
                    f"all {len(errors)} attempts of the hedged call failed; last: {errors[-1]!r}",
                    errors,
                ) from errors[-1]
    except BaseException:
        # Cancelled with attempts out: the primary's time out is recorded, a lower bound. (After
        # the call failed, this does nothing.)
        call.cancel()
        raise
    finally:
        await cancel_and_wait(running)


def wrap_hedged(policy: Hedge, fn: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
    """The coroutine function whose every call is hedged under ``policy``."""

    @functools.wraps(fn)
    async def hedged(*args: Any, **kwargs: Any) -> T:
        return await run_hedged(policy, lambda: fn(*args, **kwargs))

    hedged.hedge = policy  # type: ignore[attr-defined]
    return hedged


# One policy per call site (the factory's code object) and settings, so an adaptive delay
# learns from the calls it applies to.
_POLICIES: "weakref.WeakKeyDictionary[Any, dict[tuple[Any, ...], Hedge]]" = (
    weakref.WeakKeyDictionary()
)


class NoTargetError(LookupError):
    """A hedge found no target worth sending to: every target not already running the call
    is unhealthy. The hedge counts as a failed attempt."""


def _replica_aware(
    factory: Callable[[Target], Awaitable[T]],
    targets: Sequence[Target],
    healthy: Optional[Callable[[Target], bool]],
) -> Callable[[], Awaitable[T]]:
    """A factory of attempts over ``targets``, the rules of the core's ``CallReplicas``: the
    primary goes to the first healthy target (the first target if none is); each hedge to the
    first target that is healthy and not running an attempt of this call, or nowhere
    (:class:`NoTargetError`)."""
    running: set[int] = set()
    started = False

    def is_healthy(index: int) -> bool:
        return healthy is None or bool(healthy(targets[index]))

    async def leg(index: int) -> T:
        try:
            return await factory(targets[index])
        finally:
            running.discard(index)

    async def nowhere() -> T:
        raise NoTargetError(
            "no healthy target free for a hedge: every other target is running this call or "
            "unhealthy"
        )

    def make() -> Awaitable[T]:
        nonlocal started
        free = [i for i in range(len(targets)) if i not in running and is_healthy(i)]
        if not started:
            started = True
            index = free[0] if free else 0
        elif free:
            index = free[0]
        else:
            return nowhere()
        running.add(index)
        return leg(index)

    return make


@overload
async def hedge(
    factory: Callable[[], Awaitable[T]],
    *,
    delay: Union[_Seconds, str, None] = None,
    max_attempts: Optional[int] = None,
    budget: Union[_Number, HedgeBudget, Literal["unlimited"], None] = None,
    policy: Optional[Hedge] = None,
) -> T: ...


@overload
async def hedge(
    factory: Callable[[Target], Awaitable[T]],
    *,
    delay: Union[_Seconds, str, None] = None,
    max_attempts: Optional[int] = None,
    budget: Union[_Number, HedgeBudget, Literal["unlimited"], None] = None,
    policy: Optional[Hedge] = None,
    targets: Sequence[Target],
    healthy: Optional[Callable[[Target], bool]] = None,
) -> T: ...


async def hedge(
    factory: Callable[..., Awaitable[T]],
    *,
    delay: Union[_Seconds, str, None] = None,
    max_attempts: Optional[int] = None,
    budget: Union[_Number, HedgeBudget, Literal["unlimited"], None] = None,
    policy: Optional[Hedge] = None,
    targets: Optional[Sequence[Any]] = None,
    healthy: Optional[Callable[[Any], bool]] = None,
) -> T:
    """Runs ``factory()`` hedged: if it is still running after ``delay`` (seconds, or a
    percentile of recent latency such as ``"p95"``, the default), starts another copy, up to
    ``max_attempts`` (default 2), within ``budget`` (a ratio of extra load, default 0.05; a
    percentile is never below ``1 - budget``, the most the budget pays for). The first success
    wins; the others are cancelled. If every attempt fails, a call that made a
    single attempt raises that attempt's exception as it is; one that made several raises
    :class:`~tailguard.AllFailedError` with all of them (the last as ``__cause__``).

    With ``targets`` (replicas, hosts...), hedging is replica-aware: ``factory(target)`` is
    called with the target of each attempt; the primary goes to the first target, each hedge
    to the first target not still running an attempt of this call, and, with ``healthy``, only
    to a target ``healthy(target)`` accepts (a half-open breaker or a slow replica is no place
    for a hedge; the primary skips unhealthy targets while there is another). A hedge with
    nowhere to go fails at once with :class:`NoTargetError`.

    Without ``policy``, one :class:`~tailguard.Hedge` is kept per call site (the factory's code)
    and settings, so ``"p95"`` learns from that site's calls. Pass ``policy=`` to share one.
    """
    if targets is not None:
        if isinstance(targets, (str, bytes)) or len(targets) == 0:
            raise ConfigError(
                f"invalid `targets`: must be a non-empty sequence of targets, got {targets!r}",
                "targets",
            )
        if healthy is not None and not callable(healthy):
            raise TypeError(f"`healthy` must be callable or None, got {type(healthy).__name__}")
    elif healthy is not None:
        raise ConfigError("invalid `healthy`: applies to `targets` only", "healthy")
    if policy is None:
        code = getattr(factory, "__code__", None)
        key = (delay, max_attempts, id(budget) if isinstance(budget, HedgeBudget) else budget)
        if code is None:
            policy = Hedge(delay, max_attempts=max_attempts, budget=budget)
        else:
            per_site = _POLICIES.setdefault(code, {})
            policy = per_site.get(key)
            if policy is None:
                policy = Hedge(delay, max_attempts=max_attempts, budget=budget)
                per_site[key] = policy
    elif not isinstance(policy, Hedge):
        raise TypeError(f"`policy` must be a tailguard.Hedge or None, got {type(policy).__name__}")
    elif delay is not None or max_attempts is not None or budget is not None:
        raise ConfigError(
            "invalid `policy`: pass either a policy or its settings (delay, max_attempts, "
            "budget), not both",
            "policy",
        )
    attempts = factory if targets is None else _replica_aware(factory, targets, healthy)
    result: T = await policy.run(attempts)
    return result
