"""Type stubs for ``tailguard._native``, the Rust half of tailguard."""

import datetime
from typing import (
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
    "Backoff",
    "BackoffIterator",
    "BreakerMetrics",
    "BreakerPermit",
    "BreakerTransition",
    "CircuitBreaker",
    "Guarded",
    "Hedge",
    "HedgeBudget",
    "HedgeCall",
    "HedgeStats",
    "LatencyHistogram",
    "ManualClock",
    "Retry",
    "RetryBudget",
    "RetryEvent",
    "RetryRun",
    "Retrying",
    "RollingHistogram",
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
