"""The evaluator on a tiny real dataset: references, backends, the corpus cache, bad input and hooks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rag_factory.errors import DatasetError, FailedPreconditionError, InvalidArgumentError, ModelNotFoundError
from rag_factory.hooks import build_plugin_manager, hookimpl
from rag_factory.models.embedding import CustomModelLoader, ModelRegistry
from rag_factory.models.evaluation.evaluator import evaluate
from rag_factory.models.evaluation.progress import EvaluationProgress
from rag_factory.models.evaluation.recording import record_evaluation
from rag_factory.models.evaluation.results import EvaluationReport
from rag_factory.models.monitoring.metric_history import MetricHistory


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("embeddings")


@pytest.fixture(scope="module")
def by_id(
    eval_registry: ModelRegistry, tiny_dataset: Path, shared_loader: CustomModelLoader, cache_dir: Path
) -> EvaluationReport:
    return evaluate("minilm-1.1.0", tiny_dataset, registry=eval_registry, loader=shared_loader, cache_dir=cache_dir)


class PerfectShare:
    """A custom-metric plugin: the share of queries whose nDCG@10 is 1."""

    @hookimpl
    def rag_factory_custom_metrics(self, context: str, values: dict[str, list[float]]) -> dict[str, float] | None:
        if context != "evaluation":
            return None
        scores = values["ndcg@10"]
        return {"perfect_ndcg_share": sum(score == 1.0 for score in scores) / len(scores)}


@pytest.mark.slow
def test_registered_onnx_model_is_evaluated_with_int8(by_id: EvaluationReport) -> None:
    """A registered ONNX model runs on its int8 graph, and the report says so."""
    assert (by_id.backend, by_id.precision, by_id.weights) == ("onnx", "int8", "model_int8.onnx")
    assert (by_id.model_id, by_id.model_version, by_id.model_source) == ("minilm-1.1.0", "1.1.0", "registry")


@pytest.mark.slow
def test_report_holds_metrics_per_query_values_and_dataset_identity(
    by_id: EvaluationReport, tiny_dataset: Path
) -> None:
    """Each metric is the mean of its per-query values, over every judged query, tied to the dataset's hash."""
    from rag_factory.data.beir import load_beir

    assert by_id.n_queries == 20 and by_id.dataset == "scifact_tiny"
    assert by_id.dataset_hash == load_beir(tiny_dataset).content_hash()
    for name, value in by_id.metrics.items():
        assert value == pytest.approx(np.mean(list(by_id.per_query[name].values())))
    assert 0.5 < by_id.metrics["ndcg@10"] <= 1.0
    assert by_id.embedding_space is not None and 0.0 < by_id.embedding_space.isotropy <= 1.0


@pytest.mark.slow
def test_alias_resolves_to_the_version_it_points_at(
    by_id: EvaluationReport,
    eval_registry: ModelRegistry,
    tiny_dataset: Path,
    shared_loader: CustomModelLoader,
    cache_dir: Path,
) -> None:
    """``minilm@production`` evaluates minilm 1.1.0, with the same numbers as its id."""
    report = evaluate(
        "minilm@production", tiny_dataset, registry=eval_registry, loader=shared_loader, cache_dir=cache_dir
    )
    assert report.model_id == "minilm-1.1.0"
    assert report.metrics == by_id.metrics


@pytest.mark.slow
def test_second_run_reads_corpus_vectors_from_the_cache(
    by_id: EvaluationReport,
    eval_registry: ModelRegistry,
    tiny_dataset: Path,
    shared_loader: CustomModelLoader,
    cache_dir: Path,
) -> None:
    """A re-run embeds no document: the corpus comes from disk, and the metrics are identical."""
    again = evaluate("minilm-1.1.0", tiny_dataset, registry=eval_registry, loader=shared_loader, cache_dir=cache_dir)
    assert (by_id.corpus_cache, by_id.documents_embedded) in {("miss", by_id.n_documents), ("hit", 0)}
    assert (again.corpus_cache, again.documents_embedded) == ("hit", 0)
    assert again.metrics == by_id.metrics


@pytest.mark.slow
def test_model_directory_is_detected_as_onnx_and_uses_its_int8_graph(
    onnx_export_dir: Path, tiny_dataset: Path, shared_loader: CustomModelLoader, tmp_path: Path, by_id: EvaluationReport
) -> None:
    """A path evaluates like the registered copy of the same files, identified by the path."""
    report = evaluate(onnx_export_dir, tiny_dataset, loader=shared_loader, cache_dir=tmp_path)
    assert (report.model_source, report.model_id) == ("path", str(onnx_export_dir.resolve()))
    assert (report.backend, report.precision) == ("onnx", "int8")
    assert report.metrics == pytest.approx(by_id.metrics)


@pytest.mark.slow
def test_cached_vectors_of_another_dimension_are_refused(
    by_id: EvaluationReport,
    eval_registry: ModelRegistry,
    tiny_dataset: Path,
    shared_loader: CustomModelLoader,
    tmp_path: Path,
) -> None:
    """Vectors whose dimension is not the model's are never used: the error names the cache to delete."""
    first = evaluate("minilm-1.1.0", tiny_dataset, registry=eval_registry, loader=shared_loader, cache_dir=tmp_path)
    assert first.cache_path is not None
    np.save(Path(first.cache_path) / "corpus.npy", np.zeros((first.n_documents, 768), dtype=np.float32))
    with pytest.raises(FailedPreconditionError, match="dimension 768 but model 'minilm-1.1.0' produces 384"):
        evaluate("minilm-1.1.0", tiny_dataset, registry=eval_registry, loader=shared_loader, cache_dir=tmp_path)


@pytest.mark.slow
def test_refresh_cache_re_embeds_and_repairs_the_cache(
    by_id: EvaluationReport,
    eval_registry: ModelRegistry,
    tiny_dataset: Path,
    shared_loader: CustomModelLoader,
    tmp_path: Path,
) -> None:
    """refresh_cache ignores what is on disk, embeds again and overwrites it."""
    first = evaluate("minilm-1.1.0", tiny_dataset, registry=eval_registry, loader=shared_loader, cache_dir=tmp_path)
    np.save(Path(str(first.cache_path)) / "corpus.npy", np.zeros((first.n_documents, 8), dtype=np.float32))
    fixed = evaluate(
        "minilm-1.1.0",
        tiny_dataset,
        registry=eval_registry,
        loader=shared_loader,
        cache_dir=tmp_path,
        refresh_cache=True,
    )
    assert (fixed.corpus_cache, fixed.documents_embedded) == ("refreshed", fixed.n_documents)
    assert fixed.metrics == pytest.approx(by_id.metrics)


@pytest.mark.slow
def test_dangling_qrels_are_refused_with_their_count(
    dangling_dataset: Path, shared_loader: CustomModelLoader, onnx_export_dir: Path
) -> None:
    """Judgements naming unknown ids stop the evaluation, and the message says how many and how to go on."""
    with pytest.raises(
        DatasetError, match=r"2 judgements naming ids not in the dataset \(1 unknown queries, 1 unknown documents"
    ):
        evaluate(onnx_export_dir, dangling_dataset, loader=shared_loader, cache_dir=None)


@pytest.mark.slow
def test_dangling_qrels_are_dropped_and_reported_when_allowed(
    dangling_dataset: Path, shared_loader: CustomModelLoader, onnx_export_dir: Path, by_id: EvaluationReport
) -> None:
    """With allow_dangling_qrels the bad judgements are dropped, counted and warned about."""
    report = evaluate(
        onnx_export_dir, dangling_dataset, loader=shared_loader, cache_dir=None, allow_dangling_qrels=True
    )
    assert (
        report.dangling_qrels.judgements,
        report.dangling_qrels.unknown_queries,
        report.dangling_qrels.unknown_documents,
    ) == (2, 1, 1)
    assert report.warnings and "2 judgements" in report.warnings[0]
    assert report.metrics == pytest.approx(by_id.metrics)


@pytest.mark.parametrize("split", ["dev", "empty"], ids=["no-qrels-file", "qrels-file-without-judgements"])
def test_split_without_qrels_is_a_dataset_error(tiny_dataset: Path, split: str) -> None:
    """A split with no judged query is refused before any model is loaded."""
    with pytest.raises(DatasetError, match=f"split {split!r}|for split {split!r}"):
        evaluate("no-model-needed", tiny_dataset, split=split, cache_dir=None)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"k_values": [0]}, "k must be a positive integer, got 0"),
        ({"k_values": [5, -1]}, "k must be a positive integer, got -1"),
        ({"metrics": ["ndcg@0"]}, "k must be a positive integer"),
        ({"top_k": 0}, "top_k must be a positive integer"),
        ({"metrics": ["ndcg@ten"]}, "k must be a positive integer"),
    ],
    ids=["k-zero", "k-negative", "metric-at-zero", "top-k-zero", "k-not-a-number"],
)
def test_non_positive_k_is_an_invalid_argument(tiny_dataset: Path, options: dict[str, object], message: str) -> None:
    """Cut-offs must be positive; the check runs before anything is loaded."""
    with pytest.raises(InvalidArgumentError, match=message):
        evaluate("no-model-needed", tiny_dataset, cache_dir=None, **options)  # type: ignore[arg-type]


def test_unknown_model_without_registry_is_not_found(tiny_dataset: Path) -> None:
    """A name that is neither a path nor an installed hub id says so."""
    with pytest.raises(ModelNotFoundError, match="no registry was given"):
        evaluate("nobody/nothing-here", tiny_dataset, cache_dir=None)


@pytest.mark.slow
def test_custom_metric_plugin_shows_up_in_the_results(
    eval_registry: ModelRegistry, tiny_dataset: Path, shared_loader: CustomModelLoader, cache_dir: Path
) -> None:
    """A real plugin's metric, computed from the per-query values it is given, lands in custom_metrics."""
    manager = build_plugin_manager(load_entry_points=False, plugins=(PerfectShare(),))
    report = evaluate(
        "minilm-1.1.0",
        tiny_dataset,
        registry=eval_registry,
        loader=shared_loader,
        cache_dir=cache_dir,
        plugin_manager=manager,
    )
    expected = np.mean([value == 1.0 for value in report.per_query["ndcg@10"].values()])
    assert report.custom_metrics == {"perfect_ndcg_share": pytest.approx(expected)}


@pytest.mark.slow
def test_progress_reports_every_stage_in_order(
    onnx_export_dir: Path, tiny_dataset: Path, shared_loader: CustomModelLoader
) -> None:
    """on_progress sees loading, corpus, queries, search, scoring and done; corpus progress counts documents."""
    seen: list[EvaluationProgress] = []
    report = evaluate(onnx_export_dir, tiny_dataset, loader=shared_loader, cache_dir=None, on_progress=seen.append)
    stages = list(dict.fromkeys(p.stage for p in seen))
    assert stages == ["loading_model", "embedding_corpus", "embedding_queries", "searching", "scoring", "done"]
    corpus = [p for p in seen if p.stage == "embedding_corpus"]
    assert (corpus[-1].done, corpus[-1].total) == (report.n_documents, report.n_documents)


@pytest.mark.slow
def test_recording_an_evaluation_fills_history_and_registry_metrics(
    by_id: EvaluationReport, eval_registry: ModelRegistry
) -> None:
    """record_evaluation stores every metric in the history and under dataset/split/metric in the registry."""
    rows = record_evaluation(by_id, eval_registry)
    history = MetricHistory.for_registry(eval_registry)
    try:
        points = history.query(model_id="minilm-1.1.0", dataset="scifact_tiny", metric="ndcg@10")
    finally:
        history.close()
    assert rows == len(by_id.metrics)
    assert points[-1].value == pytest.approx(by_id.metrics["ndcg@10"])
    assert eval_registry.get_record("minilm-1.1.0").metrics["scifact_tiny/test/ndcg@10"] == pytest.approx(
        by_id.metrics["ndcg@10"]
    )
