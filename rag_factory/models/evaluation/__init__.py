"""Offline evaluation: retrieval metrics, significance tests, embedding-space metrics, error analysis."""

from __future__ import annotations

from rag_factory.models.evaluation.comparison import (
    ComparisonReport,
    ComparisonResult,
    CrossDomainTable,
    compare_models,
    compare_models_detailed,
    compare_results,
    cross_domain,
)
from rag_factory.models.evaluation.corpus_vectors import store_corpus_vectors
from rag_factory.models.evaluation.embedding_cache import DEFAULT_EMBEDDING_CACHE_DIR
from rag_factory.models.evaluation.evaluator import evaluate, evaluate_detailed
from rag_factory.models.evaluation.model_resolution import BackendChoice
from rag_factory.models.evaluation.options import EvaluationOptions, metric_names
from rag_factory.models.evaluation.progress import EvaluationProgress, ProgressCallback
from rag_factory.models.evaluation.recording import record_evaluation
from rag_factory.models.evaluation.reports import write_comparison_report, write_evaluation_report
from rag_factory.models.evaluation.results import EvaluationReport, EvaluationResult
from rag_factory.models.evaluation.space_summary import EmbeddingSpaceSummary

__all__ = [
    "DEFAULT_EMBEDDING_CACHE_DIR",
    "BackendChoice",
    "ComparisonReport",
    "ComparisonResult",
    "CrossDomainTable",
    "EmbeddingSpaceSummary",
    "EvaluationOptions",
    "EvaluationProgress",
    "EvaluationReport",
    "EvaluationResult",
    "ProgressCallback",
    "compare_models",
    "compare_models_detailed",
    "compare_results",
    "cross_domain",
    "evaluate",
    "evaluate_detailed",
    "metric_names",
    "record_evaluation",
    "store_corpus_vectors",
    "write_comparison_report",
    "write_evaluation_report",
]
