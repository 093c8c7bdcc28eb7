"""Compare two models on the same queries (paired tests, error analysis) and one model across datasets."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Unpack

from pydantic import BaseModel, ConfigDict, Field

from rag_factory.errors import InvalidArgumentError
from rag_factory.models.embedding.loader import CustomModelLoader
from rag_factory.models.evaluation.error_analysis import (
    FailureReport,
    QueryComparison,
    QueryFailure,
    categorise_failures,
    compare_queries,
)
from rag_factory.models.evaluation.evaluator import evaluate_detailed
from rag_factory.models.evaluation.options import EvaluationKeywords, EvaluationOptions
from rag_factory.models.evaluation.progress import EvaluationProgress, ProgressCallback
from rag_factory.models.evaluation.results import EvaluationReport, EvaluationResult
from rag_factory.statistics import holm_adjust
from rag_factory.statistics.paired import PairedComparison, compare_paired

DEFAULT_ALPHA = 0.05


class FailureSummary(BaseModel):
    """How often each failure category occurs for one model, with a few example queries."""

    counts: dict[str, int] = Field(description="Queries in each failure category.")
    failing_queries: int = Field(description="Queries with at least one category.")
    examples: list[QueryFailure] = Field(description="A few failing queries, worst first rank first.")

    @classmethod
    def from_report(cls, report: FailureReport, n_examples: int) -> FailureSummary:
        """Summarise a :class:`FailureReport`."""
        failing = [q for q in report.queries if q.categories]
        # Never-retrieved queries first, then by how far down the first relevant document sits.
        failing.sort(key=lambda q: (q.first_relevant_rank is not None, -(q.first_relevant_rank or 0), q.query_id))
        return cls(counts=report.counts, failing_queries=len(failing), examples=failing[:n_examples])


class ComparisonReport(BaseModel):
    """Model B (candidate) against model A (baseline) on the same queries; differences are B - A."""

    model_config = ConfigDict(protected_namespaces=())

    model_a: EvaluationReport = Field(description="Evaluation of the baseline.")
    model_b: EvaluationReport = Field(description="Evaluation of the candidate.")
    alpha: float = Field(description="Family-wise significance level of the Holm-corrected t-tests.")
    tests: dict[str, PairedComparison] = Field(description="Paired t-test, Wilcoxon and bootstrap CI per metric.")
    holm_pvalues: dict[str, float] = Field(description="t-test p-values after Holm's correction over the metrics.")
    significant: dict[str, bool] = Field(description="Holm-corrected p-value <= alpha.")
    error_metric: str = Field(description="Metric the error analysis ranks queries by.")
    error_analysis: QueryComparison = Field(description="Queries improved and regressed most.")
    failures_a: FailureSummary = Field(description="Failure categories of the baseline.")
    failures_b: FailureSummary = Field(description="Failure categories of the candidate.")


@dataclass
class ComparisonResult:
    """A comparison report and both evaluations' runs and vectors (for plots)."""

    report: ComparisonReport
    result_a: EvaluationResult
    result_b: EvaluationResult


def _labelled(callback: ProgressCallback | None, label: str) -> ProgressCallback | None:
    if callback is None:
        return None

    def relay(progress: EvaluationProgress) -> None:
        callback(EvaluationProgress(progress.stage, progress.done, progress.total, f"{label}: {progress.message}"))

    return relay


def compare_results(
    result_a: EvaluationResult,
    result_b: EvaluationResult,
    *,
    error_metric: str = "ndcg@10",
    n_examples: int = 5,
    top_k_shown: int = 10,
    alpha: float = DEFAULT_ALPHA,
    n_resamples: int = 10_000,
    seed: int = 0,
) -> ComparisonReport:
    """Paired tests and error analysis of two evaluations of the same dataset split.

    Raises:
        InvalidArgumentError: The evaluations are of different data, share no metric, or
            ``error_metric`` was not computed.
    """
    a, b = result_a.report, result_b.report
    if (a.dataset_hash, a.split) != (b.dataset_hash, b.split):
        raise InvalidArgumentError(
            f"cannot pair evaluations of different data: {a.dataset}/{a.split} ({a.dataset_hash[:12]}) vs "
            f"{b.dataset}/{b.split} ({b.dataset_hash[:12]})"
        )
    shared = [name for name in a.per_query if name in b.per_query]
    if not shared:
        raise InvalidArgumentError("the two evaluations share no metric")
    if error_metric not in shared:
        raise InvalidArgumentError(f"error_metric {error_metric!r} was not computed; computed: {', '.join(shared)}")
    if not 0.0 < alpha < 1.0:
        raise InvalidArgumentError(f"alpha must be in (0, 1), got {alpha}")
    tests = {
        name: compare_paired(a.per_query[name], b.per_query[name], metric=name, n_resamples=n_resamples, seed=seed)
        for name in shared
    }
    holm = holm_adjust({name: test.t_pvalue for name, test in tests.items()})
    dataset = result_a.dataset
    changes = compare_queries(
        a.per_query[error_metric],
        b.per_query[error_metric],
        result_a.run,
        result_b.run,
        result_a.qrels,
        dataset.queries,
        dataset.corpus,
        metric=error_metric,
        n=n_examples,
        k=top_k_shown,
    )
    return ComparisonReport(
        model_a=a,
        model_b=b,
        alpha=alpha,
        tests=tests,
        holm_pvalues=holm,
        significant={name: p <= alpha for name, p in holm.items()},
        error_metric=error_metric,
        error_analysis=changes,
        failures_a=FailureSummary.from_report(
            categorise_failures(result_a.run, result_a.qrels, dataset.queries, dataset.corpus), n_examples
        ),
        failures_b=FailureSummary.from_report(
            categorise_failures(result_b.run, result_b.qrels, dataset.queries, dataset.corpus), n_examples
        ),
    )


def compare_models_detailed(
    a: str | Path,
    b: str | Path,
    dataset_dir: str | Path,
    options: EvaluationOptions | None = None,
    *,
    error_metric: str = "ndcg@10",
    n_examples: int = 5,
    top_k_shown: int = 10,
    alpha: float = DEFAULT_ALPHA,
    **keywords: Unpack[EvaluationKeywords],
) -> ComparisonResult:
    """Like :func:`compare_models`, and also keep both evaluations' runs and vectors."""
    common = replace(options or EvaluationOptions(), **keywords)
    common = replace(common, loader=common.loader or CustomModelLoader())  # one loader for both models
    result_a = evaluate_detailed(a, dataset_dir, common, on_progress=_labelled(common.on_progress, "A"))
    result_b = evaluate_detailed(b, dataset_dir, common, on_progress=_labelled(common.on_progress, "B"))
    report = compare_results(
        result_a, result_b, error_metric=error_metric, n_examples=n_examples, top_k_shown=top_k_shown, alpha=alpha
    )
    return ComparisonResult(report=report, result_a=result_a, result_b=result_b)


def compare_models(
    a: str | Path,
    b: str | Path,
    dataset_dir: str | Path,
    options: EvaluationOptions | None = None,
    *,
    error_metric: str = "ndcg@10",
    n_examples: int = 5,
    top_k_shown: int = 10,
    alpha: float = DEFAULT_ALPHA,
    **keywords: Unpack[EvaluationKeywords],
) -> ComparisonReport:
    """Evaluate model A (baseline) and model B (candidate) on the same split and compare them query by query.

    Args:
        a: Baseline: registered id, alias or path (see :func:`evaluator.evaluate`).
        b: Candidate, likewise.
        dataset_dir: BEIR dataset directory.
        options: How both models are evaluated (see :class:`EvaluationOptions`): each metric gets a
            paired t-test, a Wilcoxon test and a bootstrap CI; one loader serves both models (a new
            one if None); progress messages start with ``"A:"`` or ``"B:"``.
        error_metric: Metric the error analysis ranks query changes by.
        n_examples: Improved, regressed and failing queries listed.
        top_k_shown: Results of each model listed per example query.
        alpha: Family-wise level of the Holm-corrected t-tests.
        **keywords: Fields of :class:`EvaluationOptions`, replacing those of ``options``.

    Returns:
        Both evaluations, per-metric paired tests (B - A), error analysis and failure categories.

    Raises:
        InvalidArgumentError, DatasetError, ModelNotFoundError: As :func:`evaluator.evaluate`.
    """
    return compare_models_detailed(
        a,
        b,
        dataset_dir,
        options,
        error_metric=error_metric,
        n_examples=n_examples,
        top_k_shown=top_k_shown,
        alpha=alpha,
        **keywords,
    ).report


class CrossDomainRow(BaseModel):
    """One dataset in a cross-domain table."""

    dataset: str = Field(description="Dataset name.")
    split: str = Field(description="Evaluated split.")
    in_domain: bool | None = Field(description="The model was fine-tuned on this dataset (None if unknown).")
    n_queries: int = Field(description="Judged queries.")
    n_documents: int = Field(description="Corpus size.")
    metrics: dict[str, float] = Field(description="Mean metric values.")
    backend: str = Field(description="Backend and precision used, e.g. 'onnx/int8'.")
    seconds: float = Field(description="Evaluation wall time.")
    corpus_cache: str = Field(description="hit, miss, refreshed or disabled.")


class CrossDomainTable(BaseModel):
    """One model across several datasets."""

    model_config = ConfigDict(protected_namespaces=())

    model_id: str = Field(description="Evaluated model.")
    model_label: str = Field(description="name@version or directory name.")
    metrics: list[str] = Field(description="Column order of the metrics.")
    rows: list[CrossDomainRow] = Field(description="One row per dataset, in the order given.")

    def to_markdown(self) -> str:
        """The table in Markdown."""
        header = ["dataset", "split", "domain", "queries", "docs", *self.metrics, "backend", "seconds", "cache"]
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for row in self.rows:
            domain = "in" if row.in_domain else "out" if row.in_domain is False else "?"
            cells = [row.dataset, row.split, domain, str(row.n_queries), str(row.n_documents)]
            cells += [f"{row.metrics.get(m, float('nan')):.4f}" for m in self.metrics]
            cells += [row.backend, f"{row.seconds:.1f}", row.corpus_cache]
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)


def cross_domain(
    model: str | Path,
    dataset_dirs: Sequence[str | Path],
    options: EvaluationOptions | None = None,
    **keywords: Unpack[EvaluationKeywords],
) -> CrossDomainTable:
    """Evaluate one model on several datasets and gather the results in one table.

    A row is marked in-domain when the registered model's ``fine_tuned_on`` names the dataset.

    Args:
        model: Registered id, alias or path (see :func:`evaluator.evaluate`).
        dataset_dirs: BEIR dataset directories, one row each, in this order.
        options: How each dataset is evaluated (see :class:`EvaluationOptions`); one loader serves
            every dataset (a new one if None); progress messages start with the dataset's name.
        **keywords: Fields of :class:`EvaluationOptions`, replacing those of ``options``.

    Raises:
        InvalidArgumentError: No dataset given.
        DatasetError, ModelNotFoundError: As :func:`evaluator.evaluate`.
    """
    if not dataset_dirs:
        raise InvalidArgumentError("cross_domain needs at least one dataset directory")
    common = replace(options or EvaluationOptions(), **keywords)
    common = replace(common, loader=common.loader or CustomModelLoader())
    registry, split = common.registry, common.split
    rows: list[CrossDomainRow] = []
    reports: list[EvaluationReport] = []
    for directory in dataset_dirs:
        labelled = _labelled(common.on_progress, Path(directory).name)
        report = evaluate_detailed(model, directory, common, on_progress=labelled).report
        reports.append(report)
        trained_on = None
        if registry is not None and report.model_source == "registry":
            metadata = registry.get_model(report.model_id)
            trained_on = metadata.fine_tuned_on if metadata is not None else None
        rows.append(
            CrossDomainRow(
                dataset=report.dataset,
                split=split,
                in_domain=None if trained_on is None else Path(trained_on).name == report.dataset,
                n_queries=report.n_queries,
                n_documents=report.n_documents,
                metrics=report.metrics,
                backend=f"{report.backend}/{report.precision}",
                seconds=report.timings.total_s,
                corpus_cache=report.corpus_cache,
            )
        )
    first = reports[0]
    return CrossDomainTable(model_id=first.model_id, model_label=first.label, metrics=list(first.metrics), rows=rows)
