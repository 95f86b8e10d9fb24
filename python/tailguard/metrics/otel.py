"""The OpenTelemetry route for a :class:`~tailguard.metrics.Recorder` (needs
``tailguard[otel]``; the metrics API only, any SDK or exporter): one observable instrument per
metric of :data:`~tailguard.metrics.METRICS`, read from the recorder at each collection.

Instrument names are the Prometheus names without a counter's ``_total`` (OpenTelemetry's
Prometheus exporter adds it back), so both routes show the same series.

.. code-block:: python

    from opentelemetry import metrics
    from tailguard.metrics import Recorder
    from tailguard.metrics.otel import observe

    recorder = Recorder()
    observe(recorder, metrics.get_meter_provider())
"""

from __future__ import annotations

from typing import Callable, Iterable, List, Optional

from opentelemetry.metrics import (
    CallbackOptions,
    Instrument,
    MeterProvider,
    Observation,
    get_meter,
)

from tailguard.metrics import METRICS, Recorder

__all__ = ["observe"]


def _callback(recorder: Recorder, name: str) -> Callable[[CallbackOptions], Iterable[Observation]]:
    def observe_now(options: CallbackOptions) -> Iterable[Observation]:
        return [
            Observation(sample.value, dict(sample.labels))
            for sample in recorder.samples()
            if sample.name == name
        ]

    return observe_now


def observe(recorder: Recorder, meter_provider: Optional[MeterProvider] = None) -> List[Instrument]:
    """Creates the instruments that report ``recorder`` on a meter named ``tailguard`` from
    ``meter_provider`` (default: the global one); returns them."""
    if not isinstance(recorder, Recorder):
        raise TypeError(
            f"`recorder` must be a tailguard.metrics.Recorder, got {type(recorder).__name__}"
        )
    meter = get_meter("tailguard", meter_provider=meter_provider)
    made: List[Instrument] = []
    for name, metric in METRICS.items():
        callbacks = [_callback(recorder, name)]
        if metric.kind == "counter":
            made.append(
                meter.create_observable_counter(
                    name[: -len("_total")], callbacks=callbacks, description=metric.help
                )
            )
        else:
            made.append(
                meter.create_observable_gauge(name, callbacks=callbacks, description=metric.help)
            )
    return made
