"""Monitoring: Prometheus metrics of serving and evaluation, and the metric history behind the latter."""

from __future__ import annotations

from rag_factory.models.monitoring.evaluation_metrics import EvaluationMetricsCollector, EvaluationMetricsExporter
from rag_factory.models.monitoring.metric_history import MetricHistory, MetricPoint
from rag_factory.models.monitoring.prometheus import ServingMetrics

__all__ = [
    "EvaluationMetricsCollector",
    "EvaluationMetricsExporter",
    "MetricHistory",
    "MetricPoint",
    "ServingMetrics",
]
