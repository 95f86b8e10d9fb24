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
    def now(self) -> float: ...
    def advance(self, seconds: _Seconds) -> None: ...

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
    ) -> Backoff: ...
    @staticmethod
    def linear(
        base: _Seconds,
        step: _Seconds,
        *,
        max_delay: Optional[_Seconds] = None,
        max_retries: Optional[int] = None,
        jitter: _Jitter = ...,
        seed: Optional[int] = None,
    ) -> Backoff: ...
    @staticmethod
    def exponential(
        base: _Seconds,
        *,
        factor: Optional[_Number] = ...,
        max_delay: Optional[_Seconds] = None,
        max_retries: Optional[int] = None,
        jitter: _Jitter = ...,
        seed: Optional[int] = None,
    ) -> Backoff: ...
    @staticmethod
    def default() -> Backoff: ...
    @property
    def kind(self) -> Literal["constant", "linear", "exponential"]: ...
    @property
    def base(self) -> float: ...
    @property
    def step(self) -> float: ...
    @property
    def factor(self) -> float: ...
    @property
    def max_delay(self) -> Optional[float]: ...
    @property
    def max_retries(self) -> Optional[int]: ...
    @property
    def jitter(self) -> Literal["none", "full", "equal", "decorrelated"]: ...
    @property
    def seed(self) -> Optional[int]: ...
    def take(self, n: int) -> list[float]: ...
    def __iter__(self) -> BackoffIterator: ...

@final
class BackoffIterator(Iterator[float]):
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
    def ratio(self) -> float: ...
    @property
    def min_per_second(self) -> int: ...
    @property
    def window(self) -> float: ...
    def deposit(self) -> None: ...
    def try_withdraw(self) -> bool: ...
    def available(self) -> int: ...

@final
class RetryEvent:
    """What an ``on_retry`` hook receives before each retry."""

    @property
    def attempt(self) -> int: ...
    @property
    def delay(self) -> float: ...
    @property
    def elapsed(self) -> float: ...
    @property
    def exception(self) -> BaseException: ...

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
    def call(self, func: Callable[_P, _R], /, *args: _P.args, **kwargs: _P.kwargs) -> _R: ...
    @property
    def on(self) -> _On: ...
    @property
    def attempts(self) -> int: ...
    @property
    def deadline(self) -> Optional[float]: ...
    @property
    def timeout(self) -> Optional[float]: ...
    @property
    def backoff(self) -> Backoff: ...
    @property
    def budget(self) -> Optional[RetryBudget]: ...
    @property
    def clock(self) -> Optional[ManualClock]: ...
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
    def retry(self) -> Retry: ...

@final
class RetryRun:
    """One async call's retry state (internal)."""

    def begin(self) -> Optional[float]: ...
    def failed(
        self, exc: BaseException, timed_out: bool = False
    ) -> Union[float, tuple[float, Awaitable[object]], None]: ...
    def close(self) -> None: ...
    @property
    def attempts(self) -> int: ...

@final
class LatencyHistogram:
    """Lock-free latency histogram; percentiles within 1/128 relative error."""

    def __new__(cls) -> LatencyHistogram: ...
    def record(self, seconds: _Seconds) -> None: ...
    def record_ns(self, nanos: int) -> None: ...
    def quantile(self, p: _Number) -> Optional[float]: ...
    @property
    def count(self) -> int: ...
    @property
    def min(self) -> Optional[float]: ...
    @property
    def max(self) -> Optional[float]: ...
    @property
    def mean(self) -> Optional[float]: ...
    def merge(self, other: LatencyHistogram) -> None: ...
    def reset(self) -> None: ...
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
    def window(self) -> float: ...
    def record(self, seconds: _Seconds) -> None: ...
    def quantile(self, p: _Number) -> Optional[float]: ...
    @property
    def count(self) -> int: ...
    def reset(self) -> None: ...

@final
class HedgeBudget:
    """A cap on hedging's extra load: hedges <= ratio x primaries; shareable."""

    def __new__(cls, ratio: _Number, *, max_burst: Optional[int] = ...) -> HedgeBudget: ...
    @property
    def ratio(self) -> float: ...
    @property
    def max_burst(self) -> int: ...
    def available(self) -> int: ...
    def deposit(self) -> None: ...
    def try_withdraw(self) -> bool: ...

@final
class HedgeStats:
    @property
    def primaries(self) -> int: ...
    @property
    def hedges_sent(self) -> int: ...
    @property
    def hedges_won(self) -> int: ...
    @property
    def budget_refusals(self) -> int: ...
    @property
    def extra_load(self) -> float: ...

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
        """The delay setting as given: seconds (a number or a timedelta), or a percentile such
        as ``"p95"`` (the default)."""
    @property
    def max_attempts(self) -> int: ...
    def current_delay(self) -> Optional[float]: ...
    def stats(self) -> HedgeStats: ...
    def latency_quantile(self, p: _Number) -> Optional[float]: ...
    def run(self, factory: Callable[[], Awaitable[_R]]) -> Awaitable[_R]: ...
    def __call__(self, func: Callable[_P, Awaitable[_R]]) -> _Hedged[_P, Coroutine[Any, Any, _R]]: ...
    def _begin(self) -> Optional[float]: ...
    def _try_hedge(self) -> bool: ...
    def _hedge_won(self) -> None: ...
    def _primary_done(self, seconds: float) -> None: ...

_BreakerOn = Union[
    Type[BaseException],
    Tuple[Type[BaseException], ...],
    Callable[[BaseException], object],
]

@final
class BreakerPermit:
    """Permission for one call through a breaker; report it once."""

    def success(self) -> None: ...
    def failure(self) -> None: ...
    def record(self, exc: Optional[BaseException] = None) -> None: ...
    def release(self) -> None: ...
    @property
    def is_probe(self) -> bool: ...

@final
class BreakerMetrics:
    @property
    def state(self) -> _BreakerState: ...
    @property
    def calls(self) -> int: ...
    @property
    def failures(self) -> int: ...
    @property
    def slow_calls(self) -> int: ...
    @property
    def failure_rate(self) -> Optional[float]: ...
    @property
    def slow_call_rate(self) -> Optional[float]: ...
    @property
    def consecutive_failures(self) -> int: ...
    @property
    def rejections(self) -> int: ...
    @property
    def probes_in_flight(self) -> int: ...
    @property
    def in_state_for(self) -> float: ...
    @property
    def open_for(self) -> Optional[float]: ...

@final
class BreakerTransition:
    @property
    def from_state(self) -> _BreakerState: ...
    @property
    def to_state(self) -> _BreakerState: ...
    @property
    def reason(self) -> _TransitionReason: ...
    @property
    def generation(self) -> int: ...

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
        open_duration: Union[_Seconds, Backoff, None] = ...,
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
    def call(self, func: Callable[_P, _R], /, *args: _P.args, **kwargs: _P.kwargs) -> _R: ...
    def acquire(self) -> BreakerPermit: ...
    @property
    def state(self) -> _BreakerState:
        """"closed", "open", "half_open", "forced_open" or "disabled"."""
    def metrics(self) -> BreakerMetrics: ...
    def force_open(self) -> None: ...
    def disable(self) -> None: ...
    def reset(self) -> None: ...
    def add_listener(self, listener: Callable[[BreakerTransition], object]) -> None: ...
    def remove_listener(self, listener: Callable[[BreakerTransition], object]) -> bool: ...
    @property
    def on(self) -> _BreakerOn: ...

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
    def breaker(self) -> _PublicBreaker: ...
