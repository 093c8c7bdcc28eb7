"""Prometheus gauges of the latest evaluation metrics, read from the metric history at scrape time."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from rag_factory.models.monitoring.metric_history import MetricHistory

METRIC_GAUGE = "rag_factory_evaluation_metric"
TIMESTAMP_GAUGE = "rag_factory_evaluation_timestamp_seconds"
_LABELS = ["model_id", "model_name", "version", "dataset", "split", "metric"]


class EvaluationMetricsCollector(Collector):
    """Yields the newest value of every evaluation series each time Prometheus scrapes.

    Reading at scrape time means an evaluation run by the CLI shows up in a running sidecar's
    ``/metrics`` without any hand-off: both share the registry database.

    Args:
        history: Where evaluations are recorded.
    """

    def __init__(self, history: MetricHistory) -> None:
        self.history = history

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """One gauge family with each metric's value, one with when it was measured."""
        values = GaugeMetricFamily(
            METRIC_GAUGE, "Latest evaluation value of a retrieval or custom metric.", labels=_LABELS
        )
        stamps = GaugeMetricFamily(
            TIMESTAMP_GAUGE, "Unix time at which that latest value was measured.", labels=_LABELS
        )
        for point in self.history.latest():
            labels = [point.model_id, point.model_name, point.version, point.dataset, point.split, point.metric]
            values.add_metric(labels, point.value)
            stamps.add_metric(labels, point.recorded_at.timestamp())
        yield values
        yield stamps


class EvaluationMetricsExporter:
    """The evaluation gauges in a ``CollectorRegistry`` of their own (or one the caller shares).

    Args:
        history: Where evaluations are recorded.
        registry: Registry to add the collector to; a new one if None.
    """

    def __init__(self, history: MetricHistory, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.collector = EvaluationMetricsCollector(history)
        self.registry.register(self.collector)

    def exposition(self) -> bytes:
        """The current gauges in Prometheus text format."""
        return generate_latest(self.registry)
