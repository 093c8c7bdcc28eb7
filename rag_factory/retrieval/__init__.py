"""Retrieval primitives shared by evaluation, training and experiments: exact search and ranking metrics."""

from __future__ import annotations

from rag_factory.retrieval.exact_search import Encoder, RetrievalEvaluation, evaluate_encoder, search
from rag_factory.retrieval.metrics import (
    DEFAULT_METRICS,
    Qrels,
    Run,
    evaluate_run,
    parse_metric,
    per_query,
    rank_documents,
)

__all__ = [
    "DEFAULT_METRICS",
    "Encoder",
    "Qrels",
    "RetrievalEvaluation",
    "Run",
    "evaluate_encoder",
    "evaluate_run",
    "parse_metric",
    "per_query",
    "rank_documents",
    "search",
]
