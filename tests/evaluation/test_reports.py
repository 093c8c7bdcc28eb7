"""Plots and reports: PNGs with axes and legends, Markdown and self-contained HTML comparing versions."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from rag_factory.errors import InvalidArgumentError
from rag_factory.hooks import build_plugin_manager, hookimpl
from rag_factory.models.embedding import CustomModelLoader, ModelRegistry
from rag_factory.models.evaluation import plots
from rag_factory.models.evaluation.comparison import ComparisonResult
from rag_factory.models.evaluation.evaluator import evaluate_detailed
from rag_factory.models.evaluation.reports import write_comparison_report, write_evaluation_report
from rag_factory.models.monitoring.metric_history import MetricPoint

PNG = b"\x89PNG\r\n\x1a\n"


def _points() -> list[MetricPoint]:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    return [
        MetricPoint(run_id=str(i), model_id=f"minilm-{v}", model_name="minilm", version=v, dataset="scifact_tiny",
                    dataset_hash="", split="test", metric=m, value=value, recorded_at=start + timedelta(days=i))
        for i, (v, m, value) in enumerate([("1.0.0", "ndcg@10", 0.64), ("1.1.0", "ndcg@10", 0.71),
                                           ("1.0.0", "mrr@10", 0.60), ("1.1.0", "mrr@10", 0.68)])
    ]  # fmt: skip


def _clusters(seed: int, n: int = 20, dim: int = 16) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(size=dim) * 3 + rng.normal(size=(n, dim))


def test_tsne_projection_coloured_by_dataset_is_a_png() -> None:
    """Groups become legend entries; the result is a PNG image."""
    png = plots.projection_png(
        {"two datasets": {"scifact": _clusters(1), "pubmedqa": _clusters(2)}}, method="tsne", legend_title="dataset"
    )
    assert png.startswith(PNG) and len(png) > 10_000


@pytest.mark.slow
def test_umap_projection_coloured_by_model_has_one_panel_per_model() -> None:
    """UMAP works too, with a panel per model (each model's own space)."""
    png = plots.projection_png(
        {
            "model A": {"query": _clusters(1), "document": _clusters(2)},
            "model B": {"query": _clusters(3), "document": _clusters(4)},
        },
        method="umap",
        legend_title="label",
    )
    assert png.startswith(PNG)


@pytest.mark.parametrize(
    ("vectors", "method", "message"),
    [(np.zeros((3, 4)), "tsne", "n >= 4"), (np.zeros((10, 4)), "pca", "unknown projection")],
    ids=["too-few-points", "unknown-method"],
)
def test_bad_projection_requests_are_refused(vectors: np.ndarray, method: str, message: str) -> None:
    """Projections need a known method and at least four points."""
    with pytest.raises(InvalidArgumentError, match=message):
        plots.project_2d(vectors, method)  # type: ignore[arg-type]


@pytest.mark.parametrize("axis", ["version", "time"], ids=["by-version", "over-time"])
def test_history_plot_draws_each_metric(axis: str) -> None:
    """Metric history plots by semver order or by time."""
    assert plots.history_png(_points(), ["ndcg@10", "mrr@10"], x=axis).startswith(PNG)  # type: ignore[arg-type]


@pytest.mark.slow
def test_comparison_report_is_self_contained_html_and_markdown(comparison: ComparisonResult, tmp_path: Path) -> None:
    """report.html embeds every image as a data URI; report.md links the same PNGs; both hold the metric table."""
    files = write_comparison_report(comparison, tmp_path / "report", history=_points(), projections=("tsne",))
    page = files.html.read_text(encoding="utf-8")
    markdown = files.markdown.read_text(encoding="utf-8")
    embedded = re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", page)
    assert len(embedded) == len(files.images) >= 4  # per-query, t-SNE, history by version and over time
    assert "src='plots/" not in page and "http" not in page
    for header in ("Δ (B − A)", "95% CI of Δ", "t-test p", "Wilcoxon p", "Holm p"):
        assert f"<th>{header}</th>" in page and header in markdown
    assert re.search(r"\| ndcg@10 \| \d\.\d{4} \| \d\.\d{4} \|", markdown)
    assert "Most improved queries" in markdown and "Failure categories" in markdown and "Embedding space" in markdown
    assert all(image.is_file() and f"plots/{image.name}" in markdown for image in files.images)


class TopHitShare:
    """A custom-metric plugin: share of queries whose first result is relevant."""

    @hookimpl
    def rag_factory_custom_metrics(self, context: str, values: dict[str, list[float]]) -> dict[str, float]:
        return {"top1_share": float(np.mean(values["mrr@10"]) if context == "evaluation" else 0.0)}


@pytest.mark.slow
def test_custom_metrics_from_a_plugin_appear_in_the_evaluation_report(
    eval_registry: ModelRegistry, tiny_dataset: Path, shared_loader: CustomModelLoader, tmp_path: Path
) -> None:
    """A plugin's metric is in the results and in both report formats."""
    manager = build_plugin_manager(load_entry_points=False, plugins=(TopHitShare(),))
    result = evaluate_detailed(
        "minilm@production",
        tiny_dataset,
        registry=eval_registry,
        loader=shared_loader,
        cache_dir=tmp_path / "cache",
        plugin_manager=manager,
    )
    files = write_evaluation_report(result, tmp_path / "report", projections=())
    value = f"{result.report.custom_metrics['top1_share']:.4f}"
    assert f"<td>top1_share</td><td class='num'>{value}</td>" in files.html.read_text(encoding="utf-8")
    assert f"| top1_share | {value} |" in files.markdown.read_text(encoding="utf-8")
