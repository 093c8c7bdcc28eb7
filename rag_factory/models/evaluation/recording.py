"""Record an evaluation of a registered model: in the metric history and in the model's registry metrics."""

from __future__ import annotations

from rag_factory.models.embedding.registry import ModelRegistry
from rag_factory.models.evaluation.results import EvaluationReport
from rag_factory.models.monitoring.metric_history import MetricHistory


def registry_metric_name(report: EvaluationReport, metric: str) -> str:
    """The key an evaluation metric gets in the registry's metrics map: ``dataset/split/metric``."""
    return f"{report.dataset}/{report.split}/{metric}"


def record_evaluation(report: EvaluationReport, registry: ModelRegistry) -> int:
    """Store a registered model's evaluation in the metric history and in its registry metrics.

    The metrics and the custom metrics are stored together, at the report's ``evaluated_at``.

    Returns:
        Rows written to the history (0 for an unregistered model, which has no version to file it under).
    """
    if report.model_source != "registry":
        return 0
    values = {**report.metrics, **report.custom_metrics}
    registry.update_metrics(report.model_id, {registry_metric_name(report, name): v for name, v in values.items()})
    history = MetricHistory.for_registry(registry)
    try:
        history.record(
            model_id=report.model_id,
            model_name=report.model_name,
            version=report.model_version,
            dataset=report.dataset,
            split=report.split,
            metrics=values,
            dataset_hash=report.dataset_hash,
            recorded_at=report.evaluated_at,
        )
    finally:
        history.close()
    return len(values)
