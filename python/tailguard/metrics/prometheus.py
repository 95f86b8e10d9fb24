"""A prometheus_client collector for a :class:`~tailguard.metrics.Recorder` (needs
``tailguard[prometheus]``): every metric of :data:`~tailguard.metrics.METRICS`, read from the
recorder at each scrape.

.. code-block:: python

    from prometheus_client import REGISTRY
    from tailguard.metrics import Recorder
    from tailguard.metrics.prometheus import TailguardCollector

    recorder = Recorder()
    REGISTRY.register(TailguardCollector(recorder))
"""

from __future__ import annotations

from typing import Dict, Iterable, Iterator, List, Union

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from tailguard.metrics import METRICS, Recorder, Sample

__all__ = ["TailguardCollector"]

_Family = Union[CounterMetricFamily, GaugeMetricFamily]


def _family(name: str) -> _Family:
    metric = METRICS[name]
    labels = list(metric.labels)
    if metric.kind == "counter":
        # prometheus_client adds the `_total` back to the sample's name.
        return CounterMetricFamily(name[: -len("_total")], metric.help, labels=labels)
    return GaugeMetricFamily(name, metric.help, labels=labels)


class TailguardCollector(Collector):
    """Exports ``recorder``'s metrics; register it with a ``CollectorRegistry``."""

    def __init__(self, recorder: Recorder) -> None:
        if not isinstance(recorder, Recorder):
            raise TypeError(
                f"`recorder` must be a tailguard.metrics.Recorder, got {type(recorder).__name__}"
            )
        self.recorder = recorder

    def describe(self) -> Iterable[Metric]:
        """The metric families, without samples (so a registry knows their names)."""
        return [_family(name) for name in METRICS]

    def collect(self) -> Iterator[Metric]:
        """Every family, with the recorder's samples now."""
        by_name: Dict[str, List[Sample]] = {name: [] for name in METRICS}
        for sample in self.recorder.samples():
            by_name[sample.name].append(sample)
        for name, samples in by_name.items():
            family = _family(name)
            for sample in samples:
                family.add_metric([value for _, value in sample.labels], sample.value)
            yield family
