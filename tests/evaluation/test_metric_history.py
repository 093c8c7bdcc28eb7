"""Metric history in the registry database, and its Prometheus export."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from rag_factory.errors import InvalidArgumentError
from rag_factory.models.embedding import EmbeddingModelMetadata, ModelRegistry
from rag_factory.models.monitoring.evaluation_metrics import EvaluationMetricsExporter
from rag_factory.models.monitoring.metric_history import MetricHistory

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def history(tmp_path: Path) -> MetricHistory:
    store = MetricHistory(tmp_path / "registry.db")
    for day, (version, ndcg) in enumerate([("1.0.0", 0.64), ("1.1.0", 0.70), ("1.1.0", 0.71)]):
        store.record(
            model_id=f"minilm-{version}", model_name="minilm", version=version, dataset="scifact", split="test",
            metrics={"ndcg@10": ndcg, "mrr@10": ndcg - 0.05}, dataset_hash="abc", recorded_at=T0 + timedelta(days=day),
        )  # fmt: skip
    store.record(
        model_id="other-1.0.0",
        model_name="other",
        version="1.0.0",
        dataset="nfcorpus",
        split="test",
        metrics={"ndcg@10": 0.3},
    )
    return store


def test_points_come_back_oldest_first_with_every_field(history: MetricHistory) -> None:
    """A round trip keeps ids, version, dataset, split, metric, value and a UTC timestamp."""
    points = history.query(model_name="minilm", metric="ndcg@10")
    assert [(p.version, p.value, p.recorded_at) for p in points] == [
        ("1.0.0", 0.64, T0), ("1.1.0", 0.70, T0 + timedelta(days=1)), ("1.1.0", 0.71, T0 + timedelta(days=2)),
    ]  # fmt: skip
    assert (points[0].model_id, points[0].dataset, points[0].split, points[0].dataset_hash) == (
        "minilm-1.0.0",
        "scifact",
        "test",
        "abc",
    )


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"model_id": "minilm-1.1.0"}, 4),
        ({"dataset": "nfcorpus"}, 1),
        ({"metric": "mrr@10"}, 3),
        ({"since": T0 + timedelta(days=1)}, 5),
        ({"until": T0 + timedelta(days=1)}, 2),
        ({"model_name": "minilm", "split": "dev"}, 0),
    ],
    ids=["model-id", "dataset", "metric", "since", "until", "no-match"],
)
def test_query_filters_combine(history: MetricHistory, filters: dict[str, object], expected: int) -> None:
    """Each filter narrows the points; they combine with AND."""
    assert len(history.query(**filters)) == expected  # type: ignore[arg-type]


def test_latest_keeps_the_newest_value_of_each_series(history: MetricHistory) -> None:
    """latest() has one point per (model, dataset, split, metric): the last recorded."""
    latest = {(p.model_id, p.metric): p.value for p in history.latest()}
    assert latest[("minilm-1.1.0", "ndcg@10")] == 0.71
    assert len(latest) == 5


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"metrics": {"ndcg@10": float("nan")}}, "finite"),
        ({"dataset": " "}, "dataset must not be empty"),
        ({"recorded_at": datetime(2026, 1, 1)}, "timezone-aware"),
    ],
    ids=["nan-value", "empty-dataset", "naive-time"],
)
def test_bad_points_are_refused(history: MetricHistory, change: dict[str, object], message: str) -> None:
    """Values must be finite, names present and times in UTC."""
    fields: dict[str, object] = {
        "model_id": "m",
        "model_name": "m",
        "version": "1.0.0",
        "dataset": "d",
        "split": "test",
        "metrics": {"x": 1.0},
    }
    with pytest.raises(InvalidArgumentError, match=message):
        history.record(**{**fields, **change})  # type: ignore[arg-type]


def test_history_shares_the_registry_database_without_disturbing_it(tmp_path: Path) -> None:
    """The history lives in registry.db next to the models; both keep working and reopen cleanly."""
    registry = ModelRegistry(tmp_path)
    registry.register_model(
        EmbeddingModelMetadata(
            model_id="m-1.0.0", model_name="m", version="1.0.0", format="onnx", embedding_dim=4, max_seq_length=8
        )
    )
    store = MetricHistory.for_registry(registry)
    store.record(
        model_id="m-1.0.0", model_name="m", version="1.0.0", dataset="d", split="test", metrics={"ndcg@10": 0.5}
    )
    store.close()
    reopened = MetricHistory(tmp_path / "registry.db")  # migrations are not applied twice
    assert [p.value for p in reopened.query()] == [0.5]
    assert reopened.integrity_check() == "ok"
    assert registry.get_model("m-1.0.0") is not None
    reopened.close()
    registry.close()


def test_prometheus_exposition_has_the_latest_value_of_each_series(history: MetricHistory) -> None:
    """Gauges carry model, version, dataset, split and metric labels, read at scrape time."""
    exporter = EvaluationMetricsExporter(history)
    text = exporter.exposition().decode()
    assert "# TYPE rag_factory_evaluation_metric gauge" in text
    assert (
        'rag_factory_evaluation_metric{dataset="scifact",metric="ndcg@10",model_id="minilm-1.1.0",model_name="minilm",split="test",version="1.1.0"} 0.71'
        in text
    )
    history.record(
        model_id="minilm-1.1.0",
        model_name="minilm",
        version="1.1.0",
        dataset="scifact",
        split="test",
        metrics={"ndcg@10": 0.75},
    )
    assert 'split="test",version="1.1.0"} 0.75' in exporter.exposition().decode()
