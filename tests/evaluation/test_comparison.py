"""Comparing two registered versions on the same queries, and one model across datasets."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from rag_factory.errors import InvalidArgumentError
from rag_factory.models.embedding import CustomModelLoader, ModelRegistry
from rag_factory.models.evaluation.comparison import ComparisonResult, compare_results, cross_domain

pytestmark = pytest.mark.slow


def test_each_metric_gets_a_paired_t_test_wilcoxon_and_bootstrap_ci(comparison: ComparisonResult) -> None:
    """Every computed metric is tested over the same 20 queries, with B - A differences."""
    report = comparison.report
    assert set(report.tests) == set(report.model_a.metrics)
    for name, test in report.tests.items():
        assert test.n == 20
        assert test.mean_diff == pytest.approx(report.model_b.metrics[name] - report.model_a.metrics[name])
        assert test.ci_low <= test.mean_diff <= test.ci_high
        assert 0.0 <= test.t_pvalue <= 1.0 and 0.0 <= test.wilcoxon_pvalue <= 1.0
        assert report.holm_pvalues[name] >= test.t_pvalue


def test_the_two_models_run_on_their_own_backends(comparison: ComparisonResult) -> None:
    """The sentence-transformers version has no int8 graph and runs in fp32; the ONNX one in int8."""
    a, b = comparison.report.model_a, comparison.report.model_b
    assert (a.backend, a.precision) == ("sentence_transformers", "fp32")
    assert (b.backend, b.precision) == ("onnx", "int8")


def test_error_analysis_lists_changed_queries_with_relevant_documents_and_ranks(comparison: ComparisonResult) -> None:
    """Changed queries carry their text, relevant documents with both ranks, and each model's top-k."""
    changes = comparison.report.error_analysis
    assert changes.metric == "ndcg@10" and changes.n_queries == 20
    for change in changes.improved + changes.regressed:
        assert change.query and change.relevant and len(change.top_a) == len(change.top_b) == 10
        assert change.delta == pytest.approx(change.value_b - change.value_a)
    assert all(c.delta > 0 for c in changes.improved) and all(c.delta < 0 for c in changes.regressed)


def test_failure_categories_are_counted_for_both_models(comparison: ComparisonResult) -> None:
    """Each model gets counts for every category and at most n example failing queries."""
    for summary in (comparison.report.failures_a, comparison.report.failures_b):
        assert set(summary.counts) == {"relevant_not_in_top_100", "ranked_below_10", "low_lexical_overlap"}
        assert len(summary.examples) <= 3
        assert all(example.categories for example in summary.examples)


def test_results_of_different_datasets_cannot_be_paired(comparison: ComparisonResult) -> None:
    """Pairing needs the same queries: evaluations of different data are refused."""
    other = comparison.result_b
    other.report = other.report.model_copy(update={"dataset_hash": "another"})
    try:
        with pytest.raises(InvalidArgumentError, match="different data"):
            compare_results(comparison.result_a, other)
    finally:
        other.report = other.report.model_copy(update={"dataset_hash": comparison.report.model_b.dataset_hash})


def test_cross_domain_gives_one_row_per_dataset_and_marks_the_training_domain(
    eval_registry: ModelRegistry, tiny_dataset: Path, shared_loader: CustomModelLoader, tmp_path: Path
) -> None:
    """One model over two datasets: a row each, in order, in-domain where it was fine-tuned."""
    other = shutil.copytree(tiny_dataset, tmp_path / "other_domain")
    table = cross_domain(
        "minilm@production",
        [tiny_dataset, other],
        registry=eval_registry,
        loader=shared_loader,
        cache_dir=tmp_path / "cache",
        metrics=["ndcg@10", "recall@100"],
    )
    assert [(row.dataset, row.in_domain) for row in table.rows] == [("scifact_tiny", True), ("other_domain", False)]
    assert table.rows[0].metrics == pytest.approx(table.rows[1].metrics)
    markdown = table.to_markdown()
    assert markdown.splitlines()[0].startswith("| dataset | split | domain | queries | docs | ndcg@10 | recall@100 |")
    assert len(markdown.splitlines()) == 4
