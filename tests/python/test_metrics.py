"""tailguard.metrics: the Recorder's counts, and the same series through prometheus_client and
through OpenTelemetry."""

from __future__ import annotations

import asyncio
from typing import Dict, Tuple

import httpx
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from prometheus_client import CollectorRegistry, generate_latest

import tailguard as tg
import tailguard.httpx as tgx
from http_server import Reply, Server
from tailguard.metrics import METRICS, Recorder
from tailguard.metrics.otel import observe
from tailguard.metrics.prometheus import TailguardCollector
from tailguard.testing import ManualClock


def test_breaker_transitions_rejections_and_state() -> None:
    recorder = Recorder()
    breaker = tg.CircuitBreaker(consecutive_failures=1, open_duration=10.0, clock=ManualClock())
    recorder.watch_breaker(breaker, name="db")
    recorder.watch_breaker(breaker, name="db")  # twice: counted once
    with pytest.raises(ZeroDivisionError):
        breaker.call(lambda: 1 / 0)
    for _ in range(3):
        with pytest.raises(tg.CircuitOpenError):
            breaker.call(lambda: 1)
    labels = {"name": "db", "host": ""}
    assert (
        recorder.value(
            "tailguard_breaker_transitions_total", **labels, **{"from": "closed", "to": "open"}
        )
        == 1
    )
    assert recorder.value("tailguard_breaker_rejections_total", **labels) == 3
    assert recorder.value("tailguard_breaker_state", **labels, state="open") == 1
    assert recorder.value("tailguard_breaker_state", **labels, state="closed") == 0
    # Forgotten: the state goes, the rejections stay (a counter never goes back).
    recorder.unwatch_breaker(breaker)
    assert recorder.value("tailguard_breaker_rejections_total", **labels) == 3
    assert recorder.value("tailguard_breaker_state", **labels, state="open") is None
    breaker.reset()
    assert (
        recorder.value(
            "tailguard_breaker_transitions_total", **labels, **{"from": "open", "to": "closed"}
        )
        is None
    )


def test_retry_hook_and_budget_refusals() -> None:
    recorder = Recorder()
    calls = 0

    @tg.retry(on=ValueError, attempts=3, backoff=tg.Backoff.constant(0), on_retry=recorder.retry_hook("job"))
    def job() -> None:
        nonlocal calls
        calls += 1
        raise ValueError

    with pytest.raises(tg.RetryError):
        job()
    assert recorder.value("tailguard_retry_retries_total", name="job") == 2
    recorder.budget_refused("job", "retry")
    assert recorder.value("tailguard_retry_budget_refusals_total", name="job") == 1


def test_hedge_statistics() -> None:
    recorder = Recorder()
    hedge = tg.Hedge(0.01, budget="unlimited")
    recorder.watch_hedge(hedge, name="search")

    async def main() -> str:
        attempt = 0

        async def call() -> str:
            nonlocal attempt
            attempt += 1
            await asyncio.sleep(5.0 if attempt == 1 else 0)
            return f"attempt {attempt}"

        return await hedge.run(call)

    assert asyncio.run(main()) == "attempt 2"
    assert recorder.value("tailguard_hedge_sent_total", name="search") == 1
    assert recorder.value("tailguard_hedge_won_total", name="search") == 1
    assert recorder.value("tailguard_hedge_budget_refusals_total", name="search") == 0


def _flow(recorder: Recorder) -> str:
    """Real requests: two retries to one host, and a breaker that opens on another (whose
    host it returns)."""
    with Server() as ok, Server() as bad:
        ok.script("/", Reply(503), Reply(503), Reply(200))
        bad.script("/", Reply(500))
        transport = tgx.Transport(
            backoff=tg.Backoff.constant(0.01),
            breaker={"consecutive_failures": 1, "open_duration": 60.0},
            failure_statuses=[500],
            metrics=recorder,
            name="api",
        )
        with httpx.Client(transport=transport) as client:
            assert client.get(ok.url + "/").status_code == 200
            assert client.get(bad.url + "/").status_code == 500
            with pytest.raises(tg.CircuitOpenError):
                client.get(bad.url + "/")
        return bad.host


def test_prometheus_collector_exports_the_vocabulary() -> None:
    recorder = Recorder()
    registry = CollectorRegistry()
    registry.register(TailguardCollector(recorder))
    bad = _flow(recorder)
    text = generate_latest(registry).decode()
    assert 'tailguard_retry_retries_total{name="api"} 2.0' in text
    assert (
        f'tailguard_breaker_transitions_total{{from="closed",host="{bad}",name="api",to="open"}} 1.0'
        in text
    )
    assert f'tailguard_breaker_rejections_total{{host="{bad}",name="api"}} 1.0' in text
    assert f'tailguard_breaker_state{{host="{bad}",name="api",state="open"}} 1.0' in text
    for name, metric in METRICS.items():
        assert f"# TYPE {name} {metric.kind}" in text


def test_opentelemetry_instruments_report_the_same_series() -> None:
    recorder = Recorder()
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    assert len(observe(recorder, provider)) == len(METRICS)
    _flow(recorder)
    data = reader.get_metrics_data()
    assert data is not None
    seen: Dict[Tuple[str, Tuple[Tuple[str, object], ...]], float] = {}
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    attributes = tuple(sorted((point.attributes or {}).items()))
                    seen[(metric.name, attributes)] = point.value  # type: ignore[union-attr]
    assert seen[("tailguard_retry_retries", (("name", "api"),))] == 2
    opened = [
        value
        for (name, attributes), value in seen.items()
        if name == "tailguard_breaker_state" and ("state", "open") in attributes
    ]
    assert sorted(opened) == [0, 1]  # one host's breaker open, the other's not


def test_exporters_refuse_what_is_not_a_recorder() -> None:
    with pytest.raises(TypeError):
        TailguardCollector(object())  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        observe(object())  # type: ignore[arg-type]


def test_add_refuses_what_is_not_in_the_vocabulary() -> None:
    recorder = Recorder()
    with pytest.raises(ValueError):
        recorder.add("tailguard_retry_retries", (("name", "x"),))
    with pytest.raises(ValueError):
        recorder.add("tailguard_breaker_state", (("name", "x"),))  # a gauge
    with pytest.raises(ValueError):
        recorder.add("tailguard_retry_retries_total", (("host", "x"),))


def test_bulkhead_rejections_are_read_by_reason() -> None:
    recorder = Recorder()
    bulkhead = tg.Bulkhead(1)
    recorder.watch_bulkhead(bulkhead, name="pool")
    labels = {"name": "pool"}
    assert recorder.value("tailguard_bulkhead_rejections_total", **labels, reason="full") == 0
    permit = bulkhead.try_acquire()
    assert permit is not None
    assert bulkhead.try_acquire() is None
    with pytest.raises(tg.BulkheadFullError):
        bulkhead.acquire(timeout=0)
    permit.release()
    full, deadline = bulkhead.rejected
    assert full + deadline == 2
    assert recorder.value("tailguard_bulkhead_rejections_total", **labels, reason="full") == full
    assert (
        recorder.value("tailguard_bulkhead_rejections_total", **labels, reason="deadline")
        == deadline
    )


def test_limiter_rejections_by_reason_and_its_limit() -> None:
    recorder = Recorder()
    limiter = tg.AdaptiveLimiter(algorithm="fixed", limit=1, clock=ManualClock())
    recorder.watch_limiter(limiter, name="db")
    assert recorder.value("tailguard_limit_limit", name="db") == 1
    permit = limiter.acquire()
    with pytest.raises(tg.LimitExceededError):
        limiter.acquire()
    permit.ignore()
    assert recorder.value("tailguard_limit_rejections_total", name="db", reason="limit") == 1
    assert recorder.value("tailguard_limit_rejections_total", name="db", reason="shed") == 0
    assert recorder.value("tailguard_limit_rejections_total", name="db", reason="probe") == 0


def test_rate_throttle_and_deadline_refusals_are_reported() -> None:
    recorder = Recorder()
    recorder.rate_rejected("api")
    recorder.throttle_rejected("backend")
    recorder.deadline_refused("search", "passed")
    recorder.deadline_refused("search", "too_short")
    recorder.deadline_refused("search", "too_short")
    assert recorder.value("tailguard_rate_rejections_total", name="api") == 1
    assert recorder.value("tailguard_throttle_rejections_total", name="backend") == 1
    refusals = "tailguard_pipeline_deadline_refusals_total"
    assert recorder.value(refusals, name="search", reason="passed") == 1
    assert recorder.value(refusals, name="search", reason="too_short") == 2
    with pytest.raises(ValueError):
        recorder.deadline_refused("search", "late")  # type: ignore[arg-type]
