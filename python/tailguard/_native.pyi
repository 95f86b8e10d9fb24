"""Type stubs for ``tailguard._native``, the Rust half of tailguard."""

import datetime
from typing import (
    ContextManager,
    Any,
    Awaitable,
    Callable,
    Coroutine,
    Generic,
    Iterator,
    Literal,
    Optional,
    Protocol,
    SupportsFloat,
    SupportsIndex,
    Tuple,
    Type,
    TypeVar,
    Union,
    final,
    overload,
)

from typing_extensions import Concatenate, ParamSpec, disjoint_base

# Decorating with a breaker gives `.breaker`: the breaker itself, a `tailguard.CircuitBreaker`
# (the public subclass of the native class below, which is not used on its own).
from tailguard._breaker import CircuitBreaker as _PublicBreaker

# What the runtime's converters accept (python/src/convert.rs): a number is anything `float()`
# takes without parsing a string (int, float, Decimal, Fraction, __float__ or __index__); `bool`
# is refused at runtime, which no type can say. Seconds are a number or a timedelta.
_Number = Union[float, SupportsFloat, SupportsIndex]
_Seconds = Union[_Number, datetime.timedelta]
_Jitter = Optional[Literal["none", "full", "equal", "decorrelated"]]
_On = Union[
    Type[BaseException],
    Tuple[Type[BaseException], ...],
    Callable[[BaseException], Union[bool, float, None]],
]
# The names the runtime gives (python/src/breaker/mod.rs, from the core's `State` and `Reason`).
# "other" is a reason a newer core may add before the binding names it.
_BreakerState = Literal["closed", "open", "half_open", "forced_open", "disabled"]
_TransitionReason = Literal[
    "failure_rate",
    "slow_call_rate",
    "consecutive_failures",
    "open_duration_elapsed",
    "probes_succeeded",
    "probe_failed",
    "probe_timed_out",
    "manual",
    "fleet",
    "other",
]
_R = TypeVar("_R")
_R_co = TypeVar("_R_co", covariant=True)
_P = ParamSpec("_P")
_Q = ParamSpec("_Q")
_S = TypeVar("_S")

# The types of decorated functions: the function's own signature (an `async def` keeps
# returning a coroutine), its name and `__wrapped__`, plus the attribute naming the policy
# (`.retry`, `.breaker`, `.hedge`). At runtime a sync function becomes a `Retrying` or `Guarded`
# and an `async def` a coroutine function; these protocols describe both. One limit: with
# `@staticmethod` or `@classmethod` stacked on top, mypy still binds them as instance methods
# (it applies the descriptor's `__get__` whatever wraps it), while the runtime binds as those
# say; decorate a module-level function and refer to it from the class instead.

class _BoundRetried(Protocol[_P, _R_co]):
    """A decorated method bound to an instance."""

    def __call__(self, *args: _P.args, **kwargs: _P.kwargs) -> _R_co: ...
    @property
    def retry(self) -> Retry: ...

class _Retried(Protocol[_P, _R]):
    def __call__(self, *args: _P.args, **kwargs: _P.kwargs) -> _R: ...
    @property
    def retry(self) -> Retry: ...
    __name__: str
    __qualname__: str
    __wrapped__: Callable[_P, _R]
    # On the class, as it is; on an instance, bound to it (as `types.MethodType` does at runtime).
    @overload
    def __get__(self, instance: None, owner: Optional[type] = None, /) -> _Retried[_P, _R]: ...
    @overload
    def __get__(
        self: _Retried[Concatenate[_S, _Q], _R], instance: _S, owner: Optional[type] = None, /
    ) -> _BoundRetried[_Q, _R]: ...

class _BoundGuarded(Protocol[_P, _R_co]):
    """A decorated method bound to an instance."""

    def __call__(self, *args: _P.args, **kwargs: _P.kwargs) -> _R_co: ...
    @property
    def breaker(self) -> _PublicBreaker: ...

class _Guarded(Protocol[_P, _R]):
    def __call__(self, *args: _P.args, **kwargs: _P.kwargs) -> _R: ...
    @property
    def breaker(self) -> _PublicBreaker: ...
    __name__: str
    __qualname__: str
    __wrapped__: Callable[_P, _R]
    # On the class, as it is; on an instance, bound to it (as `types.MethodType` does at runtime).
    @overload
    def __get__(self, instance: None, owner: Optional[type] = None, /) -> _Guarded[_P, _R]: ...
    @overload
    def __get__(
        self: _Guarded[Concatenate[_S, _Q], _R], instance: _S, owner: Optional[type] = None, /
    ) -> _BoundGuarded[_Q, _R]: ...

class _BoundHedged(Protocol[_P, _R_co]):
    """A decorated method bound to an instance."""

    def __call__(self, *args: _P.args, **kwargs: _P.kwargs) -> _R_co: ...
    @property
    def hedge(self) -> Hedge: ...

class _Hedged(Protocol[_P, _R]):
    def __call__(self, *args: _P.args, **kwargs: _P.kwargs) -> _R: ...
    @property
    def hedge(self) -> Hedge: ...
    __name__: str
    __qualname__: str
    __wrapped__: Callable[_P, _R]
    # On the class, as it is; on an instance, bound to it (as `types.MethodType` does at runtime).
    @overload
    def __get__(self, instance: None, owner: Optional[type] = None, /) -> _Hedged[_P, _R]: ...
    @overload
    def __get__(
        self: _Hedged[Concatenate[_S, _Q], _R], instance: _S, owner: Optional[type] = None, /
    ) -> _BoundHedged[_Q, _R]: ...

__version__: str
__all__ = [
    "AdaptiveTimeout",
    "AdaptiveLimiter",
    "Backoff",
    "BackoffIterator",
    "BreakerMetrics",
    "BreakerPermit",
    "BreakerTransition",
    "Bulkhead",
    "BulkheadPermit",
    "Bulkheaded",
    "CircuitBreaker",
    "Guarded",
    "Hedge",
    "HedgeBudget",
    "HedgeCall",
    "HedgeStats",
    "KeyedRateLimiter",
    "LatencyHistogram",
    "LimitPermit",
    "ManualClock",
    "Piped",
    "RateLimited",
    "RateLimiter",
    "Retry",
    "RetryBudget",
    "RetryEvent",
    "RetryRun",
    "Retrying",
    "RollingHistogram",
    "Throttle",
    "_BulkheadWaiter",
    "__version__",
    "_set_testing",
    "is_testing",
]

def _set_testing(enabled: bool, /) -> bool:
    """Turns testing mode on or off; returns the previous setting (internal: use
    ``tailguard.testing.set_testing``)."""

def is_testing() -> bool:
    """Whether testing mode is on."""

@final
class ManualClock:
    """A clock that moves only when told to; pass it as ``clock=``."""

    def __new__(cls, start: Optional[_Number] = ...) -> ManualClock: ...
    def now(self) -> float:
        """The current reading, in seconds (the `start` given, plus every advance)."""
    def advance(self, seconds: _Seconds) -> None:
        """Moves the clock forward by `seconds` (a non-negative number or a timedelta)."""

@final
class Backoff:
    """Retry delays in seconds: constant, linear or exponential, capped, jittered, seedable."""

    @staticmethod
    def constant(
        delay: _Seconds,
        *,
        max_retries: Optional[int] = None,
        jitter: _Jitter = ...,
        seed: Optional[int] = None,
    ) -> Backoff:
        """The same `delay` before every retry: exactly `delay` (no jitter) unless `jitter=` asks
        for some."""
    @staticmethod
    def linear(
        base: _Seconds,
        step: _Seconds,
        *,
        max_delay: Optional[_Seconds] = None,
        max_retries: Optional[int] = None,
        jitter: _Jitter = ...,
        seed: Optional[int] = None,
    ) -> Backoff:
        """`base`, `base + step`, `base + 2·step`, ..., capped, then jittered."""
    @staticmethod
    def exponential(
        base: _Seconds,
        *,
        factor: Optional[_Number] = ...,
        max_delay: Optional[_Seconds] = None,
        max_retries: Optional[int] = None,
        jitter: _Jitter = ...,
        seed: Optional[int] = None,
    ) -> Backoff:
        """`base`, `base·factor`, `base·factor²`, ..., capped, then jittered."""
    @staticmethod
    def default() -> Backoff:
        """The default: exponential from 0.1 s, factor 2, capped at 10 s, full jitter, unlimited."""
    @property
    def kind(self) -> Literal["constant", "linear", "exponential"]:
        """`"constant"`, `"linear"` or `"exponential"`."""
    @property
    def base(self) -> float:
        """The delay before the first retry, before jitter, in seconds."""
    @property
    def step(self) -> float:
        """The growth per retry of a linear backoff, in seconds (0 for the other kinds)."""
    @property
    def factor(self) -> float:
        """The growth factor of an exponential backoff (1 for the other kinds)."""
    @property
    def max_delay(self) -> Optional[float]:
        """The cap in seconds, or `None` if uncapped."""
    @property
    def max_retries(self) -> Optional[int]:
        """How many delays the sequence yields, or `None` if unlimited."""
    @property
    def jitter(self) -> Literal["none", "full", "equal", "decorrelated"]:
        """`"none"`, `"full"`, `"equal"` or `"decorrelated"`."""
    @property
    def seed(self) -> Optional[int]:
        """The seed, if one was given."""
    def take(self, n: int) -> list[float]:
        """The first `n` delays (fewer if the sequence is shorter), in seconds."""
    def __iter__(self) -> BackoffIterator: ...

@final
class BackoffIterator(Iterator[float]):
    """One pass over a :class:`Backoff`'s delays, in seconds."""

    def __iter__(self) -> BackoffIterator: ...
    def __next__(self) -> float: ...
    def __length_hint__(self) -> int: ...

@final
class RetryBudget:
    """Retries limited to ``ratio`` of calls over a sliding window, plus a floor per second."""

    def __new__(
        cls,
        ratio: Optional[_Number] = ...,
        *,
        min_per_second: Optional[int] = ...,
        window: Optional[_Seconds] = ...,
        clock: Optional[ManualClock] = None,
    ) -> RetryBudget: ...
    @property
    def ratio(self) -> float:
        """The fraction of calls that may be retried."""
    @property
    def min_per_second(self) -> int:
        """Retries per second allowed whatever the traffic."""
    @property
    def window(self) -> float:
        """The sliding window, in seconds."""
    def deposit(self) -> None:
        """Records a call (retry policies using the budget do this themselves)."""
    def try_withdraw(self) -> bool:
        """Asks for one retry: `True` if granted (and withdrawn), `False` if the budget is spent."""
    def available(self) -> int:
        """How many retries would be granted now, one after another."""
    def _fleet_balance(self) -> int: ...
    def _fleet_set_remote(self, thousandths: int) -> None: ...

@final
class RetryEvent:
    """What an ``on_retry`` hook receives before each retry."""

    @property
    def attempt(self) -> int:
        """The attempt that just failed, counting from 1."""
    @property
    def delay(self) -> float:
        """The wait before the next attempt, in seconds."""
    @property
    def elapsed(self) -> float:
        """Seconds from the start of the call (before its first attempt) to this failure."""
    @property
    def exception(self) -> BaseException:
        """How the attempt failed."""

@final
class Retry:
    """A retry policy; call it on a function (sync or ``async def``) to decorate it."""

    def __new__(
        cls,
        *,
        on: Optional[_On] = None,
        attempts: Optional[int] = None,
        deadline: Optional[_Seconds] = None,
        timeout: Optional[_Seconds] = None,
        backoff: Optional[Backoff] = None,
        budget: Optional[RetryBudget] = None,
        on_retry: Optional[Callable[[RetryEvent], object]] = None,
        retry_on_timeout: Optional[bool] = None,
        clock: Optional[ManualClock] = None,
    ) -> Retry: ...
    def __call__(self, func: Callable[_P, _R]) -> _Retried[_P, _R]:
        """Decorates ``func``: a sync function becomes a :class:`Retrying`, an ``async def`` a
        coroutine function; either keeps ``func``'s signature and has the policy as ``.retry``."""
    def call(self, func: Callable[_P, _R], /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        """Calls `func(*args, **kwargs)` under the policy, once: a sync call without decorating."""
    @property
    def on(self) -> _On:
        """The exception classes (or predicate) that are retried."""
    @property
    def attempts(self) -> int:
        """The most attempts per call, the first included."""
    @property
    def deadline(self) -> Optional[float]:
        """The deadline for a whole call in seconds, or `None`."""
    @property
    def timeout(self) -> Optional[float]:
        """The time limit of each attempt of an async call in seconds, or `None`."""
    @property
    def backoff(self) -> Backoff:
        """The delays between attempts."""
    @property
    def budget(self) -> Optional[RetryBudget]:
        """The shared retry budget, or `None`."""
    @property
    def clock(self) -> Optional[ManualClock]:
        """The manual clock the policy runs on, or `None` for the system clock."""
    @property
    def _needs_run(self) -> bool: ...
    @property
    def _now(self) -> Callable[[], float]: ...
    def _start(self) -> RetryRun: ...
    def _after_first_failure(self, started: float) -> RetryRun: ...

@final
class Retrying(Generic[_P, _R]):
    """A sync function wrapped by a :class:`Retry` policy: called as the function, with the
    policy as ``.retry``."""

    def __call__(self, *args: _P.args, **kwargs: _P.kwargs) -> _R: ...
    # On the class, as it is; on an instance, bound to it (as `types.MethodType` does at runtime).
    @overload
    def __get__(self, instance: None, owner: Optional[type] = None, /) -> Retrying[_P, _R]: ...
    @overload
    def __get__(
        self: Retrying[Concatenate[_S, _Q], _R], instance: _S, owner: Optional[type] = None, /
    ) -> _BoundRetried[_Q, _R]: ...
    @property
    def retry(self) -> Retry:
        """The policy this function is retried under."""

@final
class Piped(Generic[_P, _R]):
    """A sync function decorated with a :class:`~tailguard.Pipeline`: called as the function,
    with the pipeline as ``.pipeline``. Its first attempt runs in Rust; a failure continues in
    the pipeline's Python loop."""

    def __new__(
        cls,
        pipeline: Any,
        func: Callable[_P, _R],
        breaker: Optional[CircuitBreaker],
        latency: RollingHistogram,
        scopes: Any,
        deadline: Optional[float],
        fast: bool,
        adaptive: Optional[AdaptiveTimeout] = None,
    ) -> Piped[_P, _R]: ...
    def __call__(self, *args: _P.args, **kwargs: _P.kwargs) -> _R: ...
    @overload
    def __get__(self, instance: None, owner: Optional[type] = None, /) -> Piped[_P, _R]: ...
    @overload
    def __get__(
        self: Piped[Concatenate[_S, _Q], _R], instance: _S, owner: Optional[type] = None, /
    ) -> Callable[_Q, _R]: ...
    @property
    def pipeline(self) -> Any:
        """The pipeline this function is called through."""

@final
class RetryRun:
    """One async call's retry state (internal)."""

    def begin(self) -> Optional[float]:
        """Starts the next attempt: returns its time limit in seconds (`None` if unlimited), or
        raises `RetryError` if the deadline has passed."""
    def failed(
        self, exc: BaseException, timed_out: bool = False
    ) -> Union[float, tuple[float, Awaitable[object]], None]:
        """The attempt failed with `exc` (`timed_out`: by its own time limit). Returns the delay to
        wait before the next attempt, `None` to re-raise `exc` (not retryable), or raises
        `RetryError`. When the `on_retry` hook returned an awaitable (an `async def` hook), returns
        `(delay, awaitable)`: the caller awaits it before waiting out the delay."""
    def close(self) -> None:
        """The call is abandoned (cancelled): a retry the budget granted but that was never made is
        refunded at once, rather than whenever this object is collected."""
    @property
    def attempts(self) -> int:
        """Attempts started so far."""

@final
class LatencyHistogram:
    """Lock-free latency histogram; percentiles within 1/128 relative error."""

    def __new__(cls) -> LatencyHistogram: ...
    def record(self, seconds: _Seconds) -> None:
        """Records a latency in seconds (a non-negative number or a timedelta)."""
    def record_ns(self, nanos: int) -> None:
        """Records a latency in whole nanoseconds (as from `time.perf_counter_ns()` differences)."""
    def quantile(self, p: _Number) -> Optional[float]:
        """The `p`-quantile in seconds (`p` in [0, 1]; 0.99 is p99), or `None` if empty."""
    @property
    def count(self) -> int:
        """How many latencies were recorded."""
    @property
    def min(self) -> Optional[float]:
        """The smallest latency recorded, in seconds (exact), or `None`."""
    @property
    def max(self) -> Optional[float]:
        """The largest latency recorded, in seconds (exact), or `None`."""
    @property
    def mean(self) -> Optional[float]:
        """The mean latency in seconds, or `None`."""
    def merge(self, other: LatencyHistogram) -> None:
        """Adds every sample of `other` to this histogram."""
    def reset(self) -> None:
        """Forgets every sample."""
    def __len__(self) -> int: ...

@final
class AdaptiveTimeout:
    """An attempt timeout learnt from recent latency: ``percentile`` × ``factor``, within
    ``floor`` and ``ceiling`` (seconds); the floor until ``min_samples`` are known."""

    def __new__(
        cls,
        percentile: Optional[_Number] = ...,
        *,
        factor: Optional[_Number] = ...,
        floor: Optional[_Seconds] = ...,
        ceiling: Optional[_Seconds] = ...,
        min_samples: Optional[int] = ...,
        window: Optional[_Seconds] = ...,
        slots: Optional[int] = ...,
        clock: Optional[ManualClock] = None,
    ) -> AdaptiveTimeout: ...
    def timeout(self) -> float:
        """The attempt timeout now, in seconds."""
    def record(self, seconds: _Seconds) -> None:
        """An attempt completed in time (success or failure) after ``seconds``."""
    def record_timeout(self, seconds: _Seconds) -> None:
        """An attempt was cut by the timeout after ``seconds``: recorded as a lower bound on its
        latency (leaving it out would shrink the timeout), and counted."""
    def record_late(self, succeeded: bool) -> None:
        """The outcome of an attempt the timeout cut, learnt later (left to finish in the
        background): ``succeeded`` makes it a false timeout."""
    @property
    def completed(self) -> int:
        """Attempts that completed in time."""
    @property
    def timed_out(self) -> int:
        """Attempts the timeout cut."""
    @property
    def timeout_rate(self) -> Optional[float]:
        """The share of attempts the timeout cut, or ``None`` before any."""
    @property
    def false_timeout_rate(self) -> Optional[float]:
        """Of the cut attempts whose outcome was learnt (``record_late``), the share that
        succeeded: an estimate of how many timeouts were false. ``None`` without any."""
    @property
    def false_timeout_share(self) -> Optional[float]:
        """The estimated share of all attempts cut although they would have succeeded."""
    def attempt(self) -> ContextManager[float]:
        """A context manager for one sync attempt: yields the timeout in seconds (pass it to
        your client), and on exit records the attempt's latency, or, if it raised a
        ``TimeoutError``, records it as cut."""
    def run(self, factory: Callable[[], Awaitable[_R]]) -> Awaitable[_R]:
        """Awaits ``factory()`` within the timeout: its result, or
        :class:`~tailguard.AttemptTimeoutError` (after cancelling it) when it runs past.
        Records the latency, or the cut, either way."""
    @property
    def clock(self) -> Optional[ManualClock]:
        """The clock it reads (``None``: the system's monotonic clock)."""

@final
class RollingHistogram:
    """Percentiles over a sliding window of the recent past."""

    def __new__(
        cls,
        window: Optional[_Seconds] = ...,
        *,
        slots: Optional[int] = ...,
        clock: Optional[ManualClock] = None,
    ) -> RollingHistogram: ...
    @property
    def window(self) -> float:
        """The window's length in seconds."""
    def record(self, seconds: _Seconds) -> None:
        """Records a latency in seconds, observed now."""
    def quantile(self, p: _Number) -> Optional[float]:
        """The `p`-quantile of the window ending now, in seconds, or `None` if it is empty."""
    @property
    def count(self) -> int:
        """How many samples the window ending now holds."""
    def reset(self) -> None:
        """Forgets every sample."""

@final
class HedgeBudget:
    """A cap on hedging's extra load: hedges <= ratio x primaries + min_per_second a second; shareable."""

    def __new__(
        cls, ratio: _Number, *, max_burst: Optional[int] = ..., min_per_second: Optional[int] = ...
    ) -> HedgeBudget: ...
    @property
    def ratio(self) -> float:
        """Hedges allowed per primary call."""
    @property
    def max_burst(self) -> int:
        """The most hedges that can be saved up."""
    @property
    def min_per_second(self) -> int:
        """Hedges a second allowed whatever the traffic (and the most the reserve holds)."""
    def available(self) -> int:
        """How many whole hedges could be sent now."""
    def deposit(self) -> None:
        """Credits one primary call (hedging policies do this themselves)."""
    def try_withdraw(self) -> bool:
        """Takes one hedge: `True` if granted."""

@final
class HedgeStats:
    """What a hedging policy has done so far."""

    @property
    def primaries(self) -> int:
        """Calls started (one primary each)."""
    @property
    def hedges_sent(self) -> int:
        """Extra attempts sent."""
    @property
    def hedges_won(self) -> int:
        """Calls won by a hedge rather than the primary."""
    @property
    def budget_refusals(self) -> int:
        """Hedges not sent because the budget was spent."""
    @property
    def extra_load(self) -> float:
        """`hedges_sent / primaries`."""

@final
class Hedge:
    """A hedging policy: fixed or adaptive (``"p95"``) delay, attempt cap, budget."""

    def __new__(
        cls,
        delay: Union[_Seconds, str, None] = ...,
        *,
        max_attempts: Optional[int] = ...,
        budget: Union[_Number, HedgeBudget, Literal["unlimited"], None] = ...,
        min_samples: Optional[int] = ...,
        delay_floor: Optional[_Seconds] = ...,
        delay_ceiling: Optional[_Seconds] = ...,
        window: Optional[_Seconds] = ...,
        window_slots: Optional[int] = ...,
        clock: Optional[ManualClock] = None,
    ) -> Hedge: ...
    @property
    def delay(self) -> Union[_Seconds, str]:
        """The delay setting as given: seconds (a number or a timedelta), or a percentile such as
        `"p95"` (the default)."""
    @property
    def max_attempts(self) -> int:
        """The most attempts one call makes, the primary included."""
    @property
    def delay_percentile(self) -> Optional[float]:
        """The percentile of recent primary latency an adaptive delay is set at: the one asked for,
        or `1 - ratio` of the budget if that is higher (never earlier than the budget pays for:
        `"p95"` within a 2 % budget hedges at p98); `None` for a fixed delay."""
    def current_delay(self) -> Optional[float]:
        """The hedge delay a call starting now would use, in seconds; `None` while an adaptive
        policy has too few samples (calls then hedge only after a failure)."""
    def stats(self) -> HedgeStats:
        """What the policy has done so far."""
    def latency_quantile(self, p: _Number) -> Optional[float]:
        """The `p`-quantile of recent primary latencies in seconds (adaptive policies), or `None`.
        """
    def run(self, factory: Callable[[], Awaitable[_R]]) -> Awaitable[_R]:
        """Runs one hedged call: `factory()` makes each attempt's awaitable. Returns the first
        success; the other attempts are cancelled. If every attempt fails, a call that made one
        attempt raises its own exception (as the unhedged call would), one that made several raises
        `AllFailedError` with all of them."""
    def __call__(self, func: Callable[_P, Awaitable[_R]]) -> _Hedged[_P, Coroutine[Any, Any, _R]]: ...
    def _start(self) -> HedgeCall: ...

@final
class HedgeCall:
    """One hedged call's decisions (the core's `HedgeState`), driven by the loop in
    `tailguard/_hedge.py` on the policy's clock (internal)."""

    def timeout(self) -> Optional[float]:
        """Seconds until the next hedge is due (0 if it is), or `None` if none will be sent on time
        (the attempt cap, a refusal by the budget, or an adaptive policy short of samples)."""
    def try_hedge(self) -> Optional[int]:
        """Asks to start another attempt now (the delay passed, or an attempt failed): its number
        if the attempt cap and the budget allow (it is counted as a hedge sent), else `None`."""
    def done(self, attempt: int, ok: bool) -> None:
        """Attempt `attempt` (1 is the primary) ended, successfully if `ok`: records the primary's
        latency and counts a hedge's win."""
    def cancel(self) -> None:
        """The call is abandoned (cancelled): a primary still out is recorded at the time it had
        been out, a lower bound. Does nothing once the call is over."""
    @property
    def attempts(self) -> int:
        """Attempts started so far, the primary included."""
    @property
    def in_flight(self) -> int:
        """Attempts started and not yet done."""
    @property
    def winner(self) -> Optional[int]:
        """The attempt that succeeded (1 is the primary), once one has."""

_BreakerOn = Union[
    Type[BaseException],
    Tuple[Type[BaseException], ...],
    Callable[[BaseException], object],
]

@final
class BreakerPermit:
    """Permission for one call through a breaker; report it once."""

    def success(self) -> None:
        """The call worked."""
    def failure(self) -> None:
        """The call failed in a way that says the dependency is unhealthy."""
    def record(self, exc: Optional[BaseException] = None) -> None:
        """Reports by outcome: `None` is a success; an exception counts as a failure if the
        breaker's `on` says so, and as neither otherwise."""
    def release(self) -> None:
        """Gives the permit back unreported (the call was abandoned)."""
    @property
    def is_probe(self) -> bool:
        """Whether this is a half-open probe."""

@final
class BreakerMetrics:
    """A snapshot of a breaker's counters."""

    @property
    def state(self) -> _BreakerState:
        """The state: `"closed"`, `"open"`, `"half_open"`, `"forced_open"` or `"disabled"`."""
    @property
    def calls(self) -> int:
        """Calls in the window (of the current closed period or, while open or half-open, the last).
        """
    @property
    def failures(self) -> int:
        """Failed calls in the window."""
    @property
    def slow_calls(self) -> int:
        """Slow calls in the window, failed or not (those that took `slow_call_duration` or longer).
        """
    @property
    def failure_rate(self) -> Optional[float]:
        """`failures / calls` over the window, or `None` if there were no calls."""
    @property
    def slow_call_rate(self) -> Optional[float]:
        """`slow_calls / calls` over the window, or `None` if there were no calls."""
    @property
    def consecutive_failures(self) -> int:
        """Failures in a row in the current closed period (counted only with
        `consecutive_failures`)."""
    @property
    def rejections(self) -> int:
        """Calls refused without running, since the breaker was built."""
    @property
    def probes_in_flight(self) -> int:
        """Half-open probes admitted and not yet reported."""
    @property
    def in_state_for(self) -> float:
        """Seconds since the breaker entered its state."""
    @property
    def open_for(self) -> Optional[float]:
        """While open: seconds until it admits a probe."""

@final
class BreakerTransition:
    """A change of state, as given to listeners."""

    @property
    def from_state(self) -> _BreakerState:
        """The state left: `"closed"`, `"open"`, `"half_open"`, `"forced_open"` or `"disabled"`."""
    @property
    def to_state(self) -> _BreakerState:
        """The state entered, one of the same names."""
    @property
    def reason(self) -> _TransitionReason:
        """Why: `"failure_rate"`, `"slow_call_rate"`, `"consecutive_failures"`,
        `"open_duration_elapsed"`, `"probes_succeeded"`, `"probe_failed"`, `"probe_timed_out"`,
        `"manual"`, `"fleet"` (opened from outside, by a sharing layer), or `"other"` for a
        reason a newer core gives that this binding does not name."""
    @property
    def generation(self) -> int:
        """Counts transitions since the breaker was built; orders reports from several threads."""

@disjoint_base
class CircuitBreaker:
    """The native circuit breaker; use ``tailguard.CircuitBreaker``, which adds the context
    managers."""

    def __new__(
        cls,
        *,
        failure_rate: Optional[_Number] = ...,
        window: Optional[int] = ...,
        time_window: Optional[_Seconds] = ...,
        time_window_buckets: Optional[int] = ...,
        minimum_calls: Optional[int] = ...,
        consecutive_failures: Optional[int] = ...,
        open_duration: Optional[_Seconds] = ...,
        open_backoff: Optional[Backoff] = ...,
        half_open_calls: Optional[int] = ...,
        half_open_success_rate: Optional[_Number] = ...,
        half_open_timeout: Optional[_Seconds] = ...,
        slow_call_duration: Optional[_Seconds] = ...,
        slow_call_rate: Optional[_Number] = ...,
        on: Optional[_BreakerOn] = ...,
        on_transition: Optional[Callable[[BreakerTransition], object]] = ...,
        stripes: Optional[int] = ...,
        clock: Optional[ManualClock] = ...,
    ) -> CircuitBreaker: ...
    def __call__(self, func: Callable[_P, _R]) -> _Guarded[_P, _R]:
        """Decorates ``func``: a sync function becomes a :class:`Guarded`, an ``async def`` a
        coroutine function; either keeps ``func``'s signature and has the breaker as
        ``.breaker``."""
    def call(self, func: Callable[_P, _R], /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        """Calls `func(*args, **kwargs)` through the breaker, once."""
    def acquire(self) -> BreakerPermit:
        """Asks for a permit: raises `CircuitOpenError` if the breaker refuses the call. Report the
        outcome with the permit's `success()`, `failure()` or `record(exc)`; a permit released or
        collected without a report counts as neither."""
    def _enter(self) -> int: ...
    def _succeeded(self, number: int) -> None: ...
    def _settle(self, number: int, exc: BaseException) -> None: ...
    @property
    def state(self) -> _BreakerState:
        """`"closed"`, `"open"`, `"half_open"`, `"forced_open"` or `"disabled"`. Open turns
        half-open on the first call after the open duration."""
    def metrics(self) -> BreakerMetrics:
        """A snapshot of the counters."""
    def force_open(self) -> None:
        """Opens the breaker until `reset()` or `disable()`."""
    def disable(self) -> None:
        """Admits every call and keeps measuring, but never trips, until `reset()` or
        `force_open()`."""
    def reset(self) -> None:
        """Closes the breaker with an empty window and the open duration back at its start."""
    def add_listener(self, listener: Callable[[BreakerTransition], object]) -> None:
        """Calls `listener(transition)` after every change of state, on the thread that caused it.
        An exception it raises is reported with `sys.unraisablehook`, never to the caller."""
    def remove_listener(self, listener: Callable[[BreakerTransition], object]) -> bool:
        """Removes a listener added before; `False` if it was not there."""
    @property
    def on(self) -> _BreakerOn:
        """Which exceptions count as failures."""
    def _fleet_view(
        self, instances: int, ahead: float
    ) -> Tuple[str, int, int, Tuple[int, int, int], Tuple[int, int, int]]: ...
    def _fleet_crosses(self, calls: int, failures: int, slow_calls: int) -> bool: ...
    def _fleet_trip(self) -> bool: ...

@final
class Guarded(Generic[_P, _R]):
    """A sync function guarded by a :class:`CircuitBreaker`: called as the function, with the
    breaker as ``.breaker``."""

    def __call__(self, *args: _P.args, **kwargs: _P.kwargs) -> _R: ...
    # On the class, as it is; on an instance, bound to it (as `types.MethodType` does at runtime).
    @overload
    def __get__(self, instance: None, owner: Optional[type] = None, /) -> Guarded[_P, _R]: ...
    @overload
    def __get__(
        self: Guarded[Concatenate[_S, _Q], _R], instance: _S, owner: Optional[type] = None, /
    ) -> _BoundGuarded[_Q, _R]: ...
    @property
    def breaker(self) -> _PublicBreaker:
        """The breaker guarding this function."""

# The overload limits (python/src/limits/); use the public subclasses in `tailguard`.

_QueueOrder = Literal["fifo", "lifo"]
_Key = Union[str, int, bytes]

@final
class BulkheadPermit:
    """One of a bulkhead's slots, held until ``release()`` (or the end of a ``with`` block, or
    garbage collection)."""

    def release(self) -> None:
        """Gives the slot back (once; later calls do nothing)."""
    @property
    def held(self) -> bool:
        """Whether the slot is still held."""
    def __enter__(self) -> BulkheadPermit: ...
    def __exit__(self, *_exc: object) -> None: ...

@final
class _BulkheadWaiter:
    def poll(
        self, event_loop: object, future: object, wake: Callable[[Any], object]
    ) -> Optional[BulkheadPermit]: ...
    def cancel(self) -> None: ...

@disjoint_base
class Bulkhead:
    """The native bulkhead; use ``tailguard.Bulkhead``, which adds the async forms."""

    def __new__(
        cls,
        max_concurrent: Optional[int] = ...,
        *,
        max_queue: Optional[int] = ...,
        queue_order: Optional[_QueueOrder] = ...,
        max_wait: Optional[_Seconds] = ...,
    ) -> Bulkhead: ...
    def acquire(self, timeout: Optional[_Seconds] = None) -> BulkheadPermit:
        """Takes a slot, waiting in the queue (at most ``timeout`` seconds, by default
        ``max_wait``; ``None``: until a slot frees) if every slot is taken. Raises
        ``BulkheadFullError`` if the queue is full or the wait runs out. Release the permit
        with ``release()`` or a ``with`` block."""
    def try_acquire(self) -> Optional[BulkheadPermit]:
        """A slot now, or ``None`` (never waits, never raises)."""
    def _start(
        self, timeout: Optional[_Seconds] = None
    ) -> Union[BulkheadPermit, _BulkheadWaiter]: ...
    def _push(self, permit: BulkheadPermit) -> None: ...
    def __enter__(self) -> None: ...
    def __exit__(self, *_exc: object) -> None: ...
    def __call__(self, func: Callable[_P, _R]) -> Callable[_P, _R]:
        """Decorates a function: a sync function gets a native wrapper (a :class:`Bulkheaded`),
        an ``async def`` a coroutine function. Each call holds a slot while it runs."""
    @property
    def max_concurrent(self) -> int:
        """Calls allowed at once."""
    @property
    def max_queue(self) -> int:
        """Callers allowed to wait at once."""
    @property
    def queue_order(self) -> _QueueOrder:
        """``"fifo"`` or ``"lifo"``: which waiter a released slot goes to."""
    @property
    def max_wait(self) -> Optional[float]:
        """The default wait, in seconds (``None``: until a slot frees)."""
    @property
    def in_flight(self) -> int:
        """Calls holding a slot now."""
    @property
    def queued(self) -> int:
        """Callers waiting for a slot now."""
    @property
    def rejected(self) -> Tuple[int, int]:
        """Calls refused so far: ``(full, deadline)``."""

@final
class Bulkheaded(Generic[_P, _R]):
    """A sync function behind a :class:`Bulkhead`: called as the function, with the bulkhead
    as ``.bulkhead``."""

    def __call__(self, *args: _P.args, **kwargs: _P.kwargs) -> _R: ...
    def __get__(self, instance: object, owner: Optional[type] = None, /) -> Any: ...
    @property
    def bulkhead(self) -> Bulkhead:
        """The bulkhead guarding this function."""

@disjoint_base
class RateLimiter:
    """The native rate limiter; use ``tailguard.RateLimiter``, which adds the async forms,
    the context managers and the decorator."""

    def __new__(
        cls,
        rate: int,
        per: Optional[_Seconds] = ...,
        *,
        burst: Optional[int] = ...,
        max_wait: Optional[_Seconds] = ...,
        clock: Optional[ManualClock] = ...,
    ) -> RateLimiter: ...
    def try_acquire(self, n: int = 1) -> bool:
        """Takes ``n`` tokens now if there are: ``True``, or ``False`` (never waits, never raises
        for an empty bucket). ``n`` above the burst raises ``RateLimitedError``."""
    def acquire(self, n: int = 1, timeout: Optional[_Seconds] = None) -> None:
        """Takes ``n`` tokens, sleeping until they come, at most ``timeout`` seconds (by default
        ``max_wait``; ``None``: as long as it takes). Raises ``RateLimitedError`` at once if they
        would come after that."""
    def _wrap_sync(self, func: Callable[_P, _R]) -> RateLimited[_P, _R]: ...
    def _deadline(self, timeout: Optional[_Seconds] = None) -> Optional[int]: ...
    def _step(self, n: int, deadline: Optional[int]) -> Optional[float]: ...
    @property
    def available(self) -> int:
        """Whole tokens in the bucket now."""
    @property
    def burst(self) -> int:
        """Tokens the bucket holds when full."""
    @property
    def interval(self) -> float:
        """Seconds between two tokens."""
    @property
    def max_wait(self) -> Optional[float]:
        """The default wait, in seconds (``None``: as long as it takes)."""
    @property
    def clock(self) -> Optional[ManualClock]:
        """The clock: ``None`` for the system clock, or the ``ManualClock`` given."""

@final
class RateLimited(Generic[_P, _R]):
    """A sync function behind a :class:`RateLimiter`: called as the function, with the limiter
    as ``.limiter``."""

    def __call__(self, *args: _P.args, **kwargs: _P.kwargs) -> _R: ...
    def __get__(self, instance: object, owner: Optional[type] = None, /) -> Any: ...
    @property
    def limiter(self) -> RateLimiter:
        """The rate limiter guarding this function."""

@disjoint_base
class KeyedRateLimiter:
    """The native keyed rate limiter; use ``tailguard.KeyedRateLimiter``, which adds the async
    wait."""

    def __new__(
        cls,
        rate: int,
        per: Optional[_Seconds] = ...,
        *,
        burst: Optional[int] = ...,
        max_keys: Optional[int] = ...,
        shards: Optional[int] = ...,
        max_wait: Optional[_Seconds] = ...,
        clock: Optional[ManualClock] = ...,
    ) -> KeyedRateLimiter: ...
    def try_acquire(self, key: _Key, n: int = 1) -> bool:
        """Takes ``n`` tokens from ``key``'s bucket now if there are: ``True`` or ``False``."""
    def acquire(self, key: _Key, n: int = 1, timeout: Optional[_Seconds] = None) -> None:
        """Takes ``n`` tokens from ``key``'s bucket, sleeping until they come, at most ``timeout``
        seconds (by default ``max_wait``; ``None``: as long as it takes)."""
    def _deadline(self, timeout: Optional[_Seconds] = None) -> Optional[int]: ...
    def _step(self, key: _Key, n: int, deadline: Optional[int]) -> Optional[float]: ...
    def available(self, key: _Key) -> int:
        """Whole tokens in ``key``'s bucket now."""
    def retain_recent(self) -> int:
        """Forgets every key whose bucket has refilled (which changes no decision); returns how
        many keys remain."""
    def __len__(self) -> int: ...
    @property
    def max_keys(self) -> int:
        """The most keys remembered at once."""
    @property
    def burst(self) -> int:
        """Tokens each bucket holds when full."""
    @property
    def clock(self) -> Optional[ManualClock]:
        """The clock: ``None`` for the system clock, or the ``ManualClock`` given."""

@disjoint_base
class Throttle:
    """The native client-side throttle; use ``tailguard.Throttle``, which adds the decorator
    and the async context manager."""

    def __new__(
        cls,
        k: Optional[_Number] = ...,
        *,
        window: Optional[_Seconds] = ...,
        buckets: Optional[int] = ...,
        seed: Optional[int] = ...,
        on: Optional[_BreakerOn] = ...,
        clock: Optional[ManualClock] = ...,
    ) -> Throttle: ...
    def acquire(self) -> None:
        """Decides whether to send a request: returns nothing, or raises ``ThrottledError`` (the
        refusal counts as a request the backend did not accept). Then report what the backend
        did with ``record(accepted)``."""
    def record(self, accepted: bool) -> None:
        """Counts a request sent: ``accepted`` if the backend took it (whatever it answered),
        ``False`` if it rejected it for overload."""
    def _finish(self, exc: Optional[BaseException]) -> None: ...
    def __enter__(self) -> None: ...
    def __exit__(
        self,
        _exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        _tb: object,
    ) -> None: ...
    @property
    def rejection_probability(self) -> float:
        """The probability that a request now is refused locally."""
    @property
    def requests(self) -> int:
        """Requests counted in the window now."""
    @property
    def accepts(self) -> int:
        """Requests the backend accepted in the window now."""
    @property
    def k(self) -> float:
        """The multiplier ``k``."""
    @property
    def clock(self) -> Optional[ManualClock]:
        """The clock: ``None`` for the system clock, or the ``ManualClock`` given."""

@final
class LimitPermit:
    """Permission for one call through an adaptive limiter; report it once (a second report
    is ignored). Released as a drop if garbage-collected unreported."""

    def success(self) -> None:
        """The call finished: its latency is a sample."""
    def dropped(self) -> None:
        """The call was dropped because of load (a timeout, a 503 further down)."""
    def ignore(self) -> None:
        """Release without a sample: the call says nothing about load."""
    def record(self, outcome: str) -> None:
        """Reports "success", "dropped" or "ignored". A second report is ignored."""
    @property
    def done(self) -> bool:
        """Whether it has been reported."""

@disjoint_base
class AdaptiveLimiter:
    """The native adaptive limiter; use ``tailguard.AdaptiveLimiter``, which adds the decorator
    and the context managers."""

    def __new__(
        cls,
        *,
        algorithm: str = "gradient2",
        limit: Optional[int] = None,
        initial_limit: int = 20,
        min_limit: int = 1,
        max_limit: int = 1000,
        backoff: Optional[float] = None,
        sheddable_share: float = 0.5,
        default_share: float = 0.9,
        monitor_only: bool = False,
        probe_interval: Optional[float] = ...,
        clock: Optional[ManualClock] = None,
    ) -> AdaptiveLimiter: ...
    def acquire(self, criticality: str = "default") -> LimitPermit:
        """Admits a call of `criticality` ("critical", "default" or "sheddable") now, or raises
        `tailguard.LimitExceededError`."""
    @property
    def limit(self) -> int:
        """The current limit."""
    @property
    def in_flight(self) -> int:
        """Calls in flight now."""
    @property
    def monitor_only(self) -> bool:
        """Whether it only counts what it would refuse."""
    def metrics(self) -> dict[str, Any]:
        """A snapshot: limit, in_flight, samples, probes, probing, slow_start, monitor_only, and
        rejected: {reason: {class: count}}."""
