"""The events tailguard's policies emit, counted once and exported by
:mod:`tailguard.metrics.prometheus` (prometheus_client) or :mod:`tailguard.metrics.otel`
(OpenTelemetry metrics API).

A :class:`Recorder` keeps the counts. The HTTP integrations report to the one they are given
(``metrics=``); any other policy is added with :meth:`Recorder.watch_breaker`,
:meth:`Recorder.watch_hedge` and :meth:`Recorder.retry_hook`. The names and labels, the same in
Rust and Python, are listed in ``docs/metrics.md`` and in :data:`METRICS`:

- ``tailguard_retries_total{policy}``: retries made (counter);
- ``tailguard_budget_refusals_total{policy,budget}``: retries (``budget="retry"``) or hedges
  (``"hedge"``) a budget refused (counter);
- ``tailguard_hedges_sent_total{policy}``, ``tailguard_hedges_won_total{policy}`` (counters);
- ``tailguard_breaker_transitions_total{policy,host,from,to}``: changes of state (counter);
- ``tailguard_breaker_rejections_total{policy,host}``: calls refused (counter);
- ``tailguard_breaker_state{policy,host,state}``: 1 for the current state, 0 for the others
  (gauge).

Importing this module imports neither prometheus_client nor OpenTelemetry.

>>> import tailguard as tg
>>> from tailguard.metrics import Recorder
>>> recorder = Recorder()
>>> breaker = tg.CircuitBreaker()
>>> recorder.watch_breaker(breaker, policy="db")
>>> breaker.force_open()
>>> [s.value for s in recorder.samples() if s.name == "tailguard_breaker_transitions_total"]
[1]
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Dict, Iterator, List, Literal, NamedTuple, Optional, Tuple

from tailguard._native import BreakerTransition, Hedge, RetryEvent

__all__ = ["METRICS", "BREAKER_STATES", "Metric", "Recorder", "Sample"]

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
            "tailguard_retries_total",
            "counter",
            ("policy",),
            "Retries made (attempts after the first).",
        ),
        Metric(
            "tailguard_budget_refusals_total",
            "counter",
            ("policy", "budget"),
            "Retries (budget=retry) or hedges (budget=hedge) a budget refused.",
        ),
        Metric("tailguard_hedges_sent_total", "counter", ("policy",), "Hedges sent."),
        Metric(
            "tailguard_hedges_won_total",
            "counter",
            ("policy",),
            "Calls won by a hedge rather than the primary.",
        ),
        Metric(
            "tailguard_breaker_transitions_total",
            "counter",
            ("policy", "host", "from", "to"),
            "Circuit breaker changes of state.",
        ),
        Metric(
            "tailguard_breaker_rejections_total",
            "counter",
            ("policy", "host"),
            "Calls a circuit breaker refused without running them.",
        ),
        Metric(
            "tailguard_breaker_state",
            "gauge",
            ("policy", "host", "state"),
            "1 for the state a circuit breaker is in, 0 for the others.",
        ),
    )
}


class Sample(NamedTuple):
    """One value of one series, as the exporters read them."""

    name: str
    labels: Tuple[Tuple[str, str], ...]
    value: float


class _Breaker(NamedTuple):
    breaker: Any  # a tailguard.CircuitBreaker
    policy: str
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

    # -- events ------------------------------------------------------------------------------

    def add(self, name: str, labels: Tuple[Tuple[str, str], ...], value: float = 1) -> None:
        """Adds ``value`` to the counter ``name`` (one of :data:`METRICS`) with ``labels``
        (``(label, value)`` pairs in the order the metric lists them)."""
        key = (name, labels)
        with self._lock:
            self._counts[key] = self._counts.get(key, 0) + value

    def retried(self, policy: str) -> None:
        """One retry was made by ``policy``."""
        self.add("tailguard_retries_total", (("policy", policy),))

    def budget_refused(self, policy: str, budget: Literal["retry", "hedge"]) -> None:
        """A budget refused ``policy`` a retry or a hedge."""
        self.add("tailguard_budget_refusals_total", (("policy", policy), ("budget", budget)))

    def retry_hook(self, policy: str) -> Callable[[RetryEvent], None]:
        """An ``on_retry=`` hook for a :func:`tailguard.retry` policy that counts its retries."""

        def on_retry(event: RetryEvent) -> None:
            self.retried(policy)

        return on_retry

    # -- watched policies --------------------------------------------------------------------

    def watch_breaker(self, breaker: Any, *, policy: str, host: str = "") -> None:
        """Reports ``breaker`` (a :class:`tailguard.CircuitBreaker`) as ``policy`` (and
        ``host``, for a breaker per host): its transitions are counted as they happen, its
        rejections and state read when collected. Watching it again does nothing."""
        labels = (("policy", policy), ("host", host))

        def listener(t: BreakerTransition) -> None:
            self.add(
                "tailguard_breaker_transitions_total",
                (*labels, ("from", t.from_state), ("to", t.to_state)),
            )

        with self._lock:
            if id(breaker) in self._breakers:
                return
            self._breakers[id(breaker)] = _Breaker(breaker, policy, host, listener)
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
                (("policy", watched.policy), ("host", watched.host)),
                rejections,
            )

    def watch_hedge(self, hedge: Hedge, *, policy: str) -> None:
        """Reports ``hedge``'s hedges sent and won and its budget's refusals as ``policy``."""
        with self._lock:
            self._hedges[id(hedge)] = (hedge, policy)

    # -- reading -----------------------------------------------------------------------------

    def samples(self) -> List[Sample]:
        """Every series now, counters first in the order of :data:`METRICS`."""
        with self._lock:
            counts = dict(self._counts)
            breakers = list(self._breakers.values())
            hedges = list(self._hedges.values())
        for watched in breakers:
            rejections = watched.breaker.metrics().rejections
            key = (
                "tailguard_breaker_rejections_total",
                (("policy", watched.policy), ("host", watched.host)),
            )
            counts[key] = counts.get(key, 0) + rejections
        for hedge, policy in hedges:
            stats = hedge.stats()
            for name, labels, value in (
                ("tailguard_hedges_sent_total", (("policy", policy),), stats.hedges_sent),
                ("tailguard_hedges_won_total", (("policy", policy),), stats.hedges_won),
                (
                    "tailguard_budget_refusals_total",
                    (("policy", policy), ("budget", "hedge")),
                    stats.budget_refusals,
                ),
            ):
                counts[(name, labels)] = counts.get((name, labels), 0) + value
        order = {name: index for index, name in enumerate(METRICS)}
        out = [Sample(name, labels, value) for (name, labels), value in counts.items()]
        out.sort(key=lambda s: (order[s.name], s.labels))
        out.extend(self._states(breakers))
        return out

    @staticmethod
    def _states(breakers: List[_Breaker]) -> Iterator[Sample]:
        for watched in breakers:
            current = watched.breaker.state
            for state in BREAKER_STATES:
                yield Sample(
                    "tailguard_breaker_state",
                    (("policy", watched.policy), ("host", watched.host), ("state", state)),
                    1 if state == current else 0,
                )

    def value(self, name: str, **labels: str) -> Optional[float]:
        """The current value of one series (labels by name), or ``None`` if it has none yet.

        >>> Recorder().value("tailguard_retries_total", policy="api") is None
        True
        """
        wanted = set(labels.items())
        for sample in self.samples():
            if sample.name == name and set(sample.labels) == wanted:
                return sample.value
        return None
