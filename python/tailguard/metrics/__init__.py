"""The events tailguard's policies emit, counted once and exported by
:mod:`tailguard.metrics.prometheus` (prometheus_client) or :mod:`tailguard.metrics.otel`
(OpenTelemetry metrics API).

A :class:`Recorder` keeps the counts. The HTTP integrations report to the one they are given
(``metrics=``); any other policy is added with :meth:`Recorder.watch_breaker`,
:meth:`Recorder.watch_hedge` and :meth:`Recorder.retry_hook`. The names and labels, the same in
Rust and Python, are listed in ``docs/metrics.md`` and in :data:`METRICS`:

- ``tailguard_retry_retries_total{name}``: retries made (counter);
- ``tailguard_retry_budget_refusals_total{name}``: retries the retry budget refused (counter);
- ``tailguard_hedge_primaries_total{name}``, ``tailguard_hedge_sent_total{name}``,
  ``tailguard_hedge_won_total{name}``, ``tailguard_hedge_budget_refusals_total{name}``
  (counters);
- ``tailguard_breaker_transitions_total{name,host,from,to}``: changes of state (counter);
- ``tailguard_breaker_rejections_total{name,host}``: calls refused (counter);
- ``tailguard_breaker_state{name,host,state}``: 1 for the current state, 0 for the others
  (gauge);
- ``tailguard_bulkhead_rejections_total{name,reason}`` (:meth:`Recorder.watch_bulkhead`),
  ``tailguard_limit_rejections_total{name,reason}`` and ``tailguard_limit_limit{name}`` (a
  gauge; :meth:`Recorder.watch_limiter`), ``tailguard_rate_rejections_total{name}``,
  ``tailguard_throttle_rejections_total{name}`` and
  ``tailguard_pipeline_deadline_refusals_total{name,reason}`` (reported with
  :meth:`Recorder.rate_rejected`, :meth:`Recorder.throttle_rejected` and
  :meth:`Recorder.deadline_refused`).

``name`` is the policy's name (``name=`` here, the builder's ``name(..)`` in Rust); ``host`` is
set for a breaker kept per host (the HTTP integrations) and empty otherwise.

Importing this module imports neither prometheus_client nor OpenTelemetry.

>>> import tailguard as tg
>>> from tailguard.metrics import Recorder
>>> recorder = Recorder()
>>> breaker = tg.CircuitBreaker()
>>> recorder.watch_breaker(breaker, name="db")
>>> breaker.force_open()
>>> [s.value for s in recorder.samples() if s.name == "tailguard_breaker_transitions_total"]
[1]
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Dict, Iterator, List, Literal, NamedTuple, Optional, Tuple

from tailguard._native import BreakerTransition, Hedge, RetryEvent

__all__ = [
    "METRICS",
    "BREAKER_STATES",
    "BULKHEAD_REASONS",
    "LIMIT_REASONS",
    "Metric",
    "Recorder",
    "Sample",
]

#: Every state a breaker reports, in the order ``tailguard_breaker_state`` lists them.
BREAKER_STATES = ("closed", "open", "half_open", "forced_open", "disabled")


class Metric(NamedTuple):
    """One metric of the shared vocabulary."""

    #: The Prometheus name (OpenTelemetry instruments drop a counter's ``_total``).
    name: str
    kind: Literal["counter", "gauge"]
    labels: Tuple[str, ...]
    help: str


#: The vocabulary, by name.
METRICS: Dict[str, Metric] = {
    m.name: m
    for m in (
        Metric(
            "tailguard_retry_retries_total",
            "counter",
            ("name",),
            "Retries made (attempts after the first).",
        ),
        Metric(
            "tailguard_retry_budget_refusals_total",
            "counter",
            ("name",),
            "Retries the retry budget refused.",
        ),
        Metric(
            "tailguard_hedge_primaries_total",
            "counter",
            ("name",),
            "Hedged calls started (each call's first attempt).",
        ),
        Metric("tailguard_hedge_sent_total", "counter", ("name",), "Hedges sent."),
        Metric(
            "tailguard_hedge_won_total",
            "counter",
            ("name",),
            "Calls won by a hedge rather than the primary.",
        ),
        Metric(
            "tailguard_hedge_budget_refusals_total",
            "counter",
            ("name",),
            "Hedges the hedge budget refused.",
        ),
        Metric(
            "tailguard_breaker_transitions_total",
            "counter",
            ("name", "host", "from", "to"),
            "Circuit breaker changes of state.",
        ),
        Metric(
            "tailguard_breaker_rejections_total",
            "counter",
            ("name", "host"),
            "Calls a circuit breaker refused without running them.",
        ),
        Metric(
            "tailguard_breaker_state",
            "gauge",
            ("name", "host", "state"),
            "1 for the state a circuit breaker is in, 0 for the others.",
        ),
        Metric(
            "tailguard_bulkhead_rejections_total",
            "counter",
            ("name", "reason"),
            "Calls a bulkhead refused (reason: full or deadline).",
        ),
        Metric(
            "tailguard_rate_rejections_total",
            "counter",
            ("name",),
            "Calls a rate limiter refused.",
        ),
        Metric(
            "tailguard_limit_rejections_total",
            "counter",
            ("name", "reason"),
            "Calls an adaptive limiter refused (reason: limit, shed or probe).",
        ),
        Metric("tailguard_limit_limit", "gauge", ("name",), "An adaptive limiter's limit."),
        Metric(
            "tailguard_throttle_rejections_total",
            "counter",
            ("name",),
            "Calls a client-side throttle refused.",
        ),
        Metric(
            "tailguard_pipeline_deadline_refusals_total",
            "counter",
            ("name", "reason"),
            "Attempts a pipeline did not start for the deadline (reason: passed or too_short).",
        ),
    )
}

#: The reasons of ``tailguard_bulkhead_rejections_total``, in the order of ``Bulkhead.rejected``.
BULKHEAD_REASONS = ("full", "deadline")

#: The reasons of ``tailguard_limit_rejections_total``.
LIMIT_REASONS = ("limit", "shed", "probe")


class Sample(NamedTuple):
    """One value of one series, as the exporters read them."""

    name: str
    labels: Tuple[Tuple[str, str], ...]
    value: float


class _Breaker(NamedTuple):
    breaker: Any  # a tailguard.CircuitBreaker
    name: str
    host: str
    listener: Callable[[BreakerTransition], None]


class Recorder:
    """Counts the events of the policies reported to it; thread safe.

    Counting happens only on the paths that are not the happy one (a retry, a refusal, a
    change of state); a breaker's rejections and state and a hedge's statistics are read from
    the policy itself when the exporter collects.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Dict[Tuple[str, Tuple[Tuple[str, str], ...]], float] = {}
        self._breakers: Dict[int, _Breaker] = {}
        self._hedges: Dict[int, Tuple[Hedge, str]] = {}
        self._bulkheads: Dict[int, Tuple[Any, str]] = {}
        self._limiters: Dict[int, Tuple[Any, str]] = {}

    # -- events ------------------------------------------------------------------------------

    def add(self, name: str, labels: Tuple[Tuple[str, str], ...], value: float = 1) -> None:
        """Adds ``value`` to the counter ``name`` (one of :data:`METRICS`) with ``labels``
        (``(label, value)`` pairs in the order the metric lists them)."""
        metric = METRICS.get(name)
        if metric is None or metric.kind != "counter":
            raise ValueError(f"{name!r} is not a counter of tailguard.metrics.METRICS")
        if tuple(label for label, _ in labels) != metric.labels:
            raise ValueError(f"{name} takes the labels {metric.labels}, got {labels!r}")
        key = (name, labels)
        with self._lock:
            self._counts[key] = self._counts.get(key, 0) + value

    def retried(self, name: str) -> None:
        """One retry was made by the policy ``name``."""
        self.add("tailguard_retry_retries_total", (("name", name),))

    def budget_refused(self, name: str, budget: Literal["retry", "hedge"]) -> None:
        """A budget refused the policy ``name`` a retry or a hedge."""
        self.add(f"tailguard_{budget}_budget_refusals_total", (("name", name),))

    def retry_hook(self, name: str) -> Callable[[RetryEvent], None]:
        """An ``on_retry=`` hook for a :func:`tailguard.retry` policy that counts its retries."""

        def on_retry(event: RetryEvent) -> None:
            self.retried(name)

        return on_retry

    def rate_rejected(self, name: str) -> None:
        """The rate limiter ``name`` refused a call (a ``RateLimitedError``, or ``False`` from
        ``try_acquire``): the Python rate limiter keeps no count to read, so report it."""
        self.add("tailguard_rate_rejections_total", (("name", name),))

    def throttle_rejected(self, name: str) -> None:
        """The throttle ``name`` refused a call (a ``ThrottledError``): report it, as the
        throttle keeps no count of its refusals."""
        self.add("tailguard_throttle_rejections_total", (("name", name),))

    def deadline_refused(self, name: str, reason: Literal["passed", "too_short"]) -> None:
        """The pipeline ``name`` did not start an attempt for the deadline: it had ``passed``,
        or too little time was left (``too_short``)."""
        if reason not in ("passed", "too_short"):
            raise ValueError(f"reason must be 'passed' or 'too_short', got {reason!r}")
        self.add(
            "tailguard_pipeline_deadline_refusals_total", (("name", name), ("reason", reason))
        )

    # -- watched policies --------------------------------------------------------------------

    def watch_breaker(self, breaker: Any, *, name: str, host: str = "") -> None:
        """Reports ``breaker`` (a :class:`tailguard.CircuitBreaker`) as ``name`` (and
        ``host``, for a breaker per host): its transitions are counted as they happen, its
        rejections and state read when collected. Watching it again does nothing."""
        labels = (("name", name), ("host", host))

        def listener(t: BreakerTransition) -> None:
            self.add(
                "tailguard_breaker_transitions_total",
                (*labels, ("from", t.from_state), ("to", t.to_state)),
            )

        with self._lock:
            if id(breaker) in self._breakers:
                return
            self._breakers[id(breaker)] = _Breaker(breaker, name, host, listener)
        breaker.add_listener(listener)

    def unwatch_breaker(self, breaker: Any) -> None:
        """Stops reporting ``breaker``: its state series goes, and its rejections so far stay in
        the counter (which never goes back)."""
        with self._lock:
            watched = self._breakers.pop(id(breaker), None)
        if watched is None:
            return
        breaker.remove_listener(watched.listener)
        rejections = breaker.metrics().rejections
        if rejections:
            self.add(
                "tailguard_breaker_rejections_total",
                (("name", watched.name), ("host", watched.host)),
                rejections,
            )

    def watch_hedge(self, hedge: Hedge, *, name: str) -> None:
        """Reports ``hedge``'s calls, hedges sent and won and its budget's refusals as ``name``."""
        with self._lock:
            self._hedges[id(hedge)] = (hedge, name)

    def watch_bulkhead(self, bulkhead: Any, *, name: str) -> None:
        """Reports ``bulkhead``'s (a :class:`tailguard.Bulkhead`) refusals as ``name``, read from
        its ``rejected`` counts when collected."""
        with self._lock:
            self._bulkheads[id(bulkhead)] = (bulkhead, name)

    def watch_limiter(self, limiter: Any, *, name: str) -> None:
        """Reports ``limiter``'s (a :class:`tailguard.AdaptiveLimiter`) refusals by reason and
        its limit as ``name``, read from ``limiter.metrics()`` when collected."""
        with self._lock:
            self._limiters[id(limiter)] = (limiter, name)

    # -- reading -----------------------------------------------------------------------------

    def samples(self) -> List[Sample]:
        """Every series now, counters first in the order of :data:`METRICS`."""
        with self._lock:
            counts = dict(self._counts)
            breakers = list(self._breakers.values())
            hedges = list(self._hedges.values())
            bulkheads = list(self._bulkheads.values())
            limiters = list(self._limiters.values())
        for watched in breakers:
            rejections = watched.breaker.metrics().rejections
            key = (
                "tailguard_breaker_rejections_total",
                (("name", watched.name), ("host", watched.host)),
            )
            counts[key] = counts.get(key, 0) + rejections
        for hedge, hedge_name in hedges:
            stats = hedge.stats()
            labels = (("name", hedge_name),)
            for metric, value in (
                ("tailguard_hedge_primaries_total", stats.primaries),
                ("tailguard_hedge_sent_total", stats.hedges_sent),
                ("tailguard_hedge_won_total", stats.hedges_won),
                ("tailguard_hedge_budget_refusals_total", stats.budget_refusals),
            ):
                counts[(metric, labels)] = counts.get((metric, labels), 0) + value
        for bulkhead, bulkhead_name in bulkheads:
            for reason, value in zip(BULKHEAD_REASONS, bulkhead.rejected):
                by_reason = (("name", bulkhead_name), ("reason", reason))
                key = ("tailguard_bulkhead_rejections_total", by_reason)
                counts[key] = counts.get(key, 0) + value
        gauges: List[Sample] = []
        for limiter, limiter_name in limiters:
            snapshot = limiter.metrics()
            rejected = snapshot["rejected"]
            for reason in LIMIT_REASONS:
                by_reason = (("name", limiter_name), ("reason", reason))
                key = ("tailguard_limit_rejections_total", by_reason)
                counts[key] = counts.get(key, 0) + sum(rejected.get(reason, {}).values())
            gauges.append(
                Sample("tailguard_limit_limit", (("name", limiter_name),), snapshot["limit"])
            )
        order = {name: index for index, name in enumerate(METRICS)}
        out = [Sample(name, labels, value) for (name, labels), value in counts.items()]
        out.sort(key=lambda s: (order[s.name], s.labels))
        out.extend(self._states(breakers))
        out.extend(gauges)
        return out

    @staticmethod
    def _states(breakers: List[_Breaker]) -> Iterator[Sample]:
        for watched in breakers:
            current = watched.breaker.state
            for state in BREAKER_STATES:
                yield Sample(
                    "tailguard_breaker_state",
                    (("name", watched.name), ("host", watched.host), ("state", state)),
                    1 if state == current else 0,
                )

    def value(self, metric: str, /, **labels: str) -> Optional[float]:
        """The current value of one series (labels by name), or ``None`` if it has none yet.

        >>> Recorder().value("tailguard_retry_retries_total", name="api") is None
        True
        """
        wanted = set(labels.items())
        for sample in self.samples():
            if sample.name == metric and set(sample.labels) == wanted:
                return sample.value
        return None
