"""Error analysis: which queries a new model improved or broke, and why queries fail.

:func:`compare_queries` lists the queries whose metric rose or fell most between model A
(baseline) and model B (candidate), each with its relevant documents and where each model
ranked them.  :func:`categorise_failures` tags the queries a single model gets wrong with
simple, explainable failure categories.  Results are pydantic models, so they serialise to
JSON for reports.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Literal

from pydantic import BaseModel, Field

from rag_factory.data.beir import Document
from rag_factory.errors import InvalidArgumentError
from rag_factory.retrieval.metrics import Qrels, rank_documents
from rag_factory.statistics.paired import paired_values

RankedRun = Mapping[str, Sequence[str] | Mapping[str, float]]
"""Per query, either doc ids best first or ``{doc_id: score}`` (ranked like ``trec_eval``)."""
Corpus = Mapping[str, Document | str]

FailureCategory = Literal["relevant_not_in_top_100", "ranked_below_10", "low_lexical_overlap"]

RETRIEVAL_DEPTH = 100
"""A query whose relevant documents are all missing from this many results is not retrieved."""
RANK_CUTOFF = 10
"""A query whose first relevant document is retrieved, but below this rank, is ranked too low."""
DEFAULT_OVERLAP_THRESHOLD = 0.02
"""Jaccard below which overlap is low; about the 7th percentile of SciFact test query/relevant pairs."""
SNIPPET_CHARS = 80

_WORD = re.compile(r"\w+")


class RelevantDocument(BaseModel):
    """A judged relevant document of a query and where each model ranked it."""

    doc_id: str = Field(description="Corpus id of the document.")
    grade: int = Field(description="Relevance grade from the qrels (>= 1).")
    snippet: str = Field(description="Title, or the start of the text when there is no title.")
    rank_a: int | None = Field(description="1-based rank under model A; None if A did not retrieve it.")
    rank_b: int | None = Field(description="1-based rank under model B; None if B did not retrieve it.")


class QueryChange(BaseModel):
    """One query whose metric changed between model A and model B."""

    query_id: str = Field(description="Query id.")
    query: str = Field(description="Query text.")
    value_a: float = Field(description="Metric value under model A.")
    value_b: float = Field(description="Metric value under model B.")
    delta: float = Field(description="value_b - value_a; positive means B improved the query.")
    relevant: list[RelevantDocument] = Field(description="Every relevant document, best grade first.")
    top_a: list[str] = Field(description="Model A's top-k doc ids, best first.")
    top_b: list[str] = Field(description="Model B's top-k doc ids, best first.")


class QueryComparison(BaseModel):
    """The queries that model B improved and regressed most, relative to model A."""

    metric: str = Field(description="Name of the compared metric, e.g. 'ndcg@10'.")
    n_queries: int = Field(description="Number of queries compared.")
    n_improved: int = Field(description="Queries where B scores higher than A.")
    n_regressed: int = Field(description="Queries where B scores lower than A.")
    improved: list[QueryChange] = Field(description="Largest improvements first (at most n).")
    regressed: list[QueryChange] = Field(description="Largest regressions first (at most n).")


class QueryFailure(BaseModel):
    """Failure categories of one query under one model."""

    query_id: str = Field(description="Query id.")
    query: str = Field(description="Query text.")
    first_relevant_rank: int | None = Field(
        description="1-based rank of the best-ranked relevant document; None if none was retrieved."
    )
    lexical_overlap: float = Field(
        description="Largest Jaccard overlap of lowercase word sets between the query and a relevant document."
    )
    categories: list[FailureCategory] = Field(description="Failure categories; empty when the query is fine.")


class FailureReport(BaseModel):
    """Failure categories of every query with relevant documents, and how often each occurs."""

    counts: dict[str, int] = Field(description="Number of queries in each category.")
    queries: list[QueryFailure] = Field(description="One entry per query with at least one relevant document.")


def _ranking(run: RankedRun, query_id: str) -> list[str]:
    entry = run.get(query_id, ())
    if isinstance(entry, Mapping):
        return rank_documents(entry)
    return list(entry)


def _document_text(corpus: Corpus, doc_id: str) -> tuple[str, str]:
    # (snippet, full text); a document missing from the corpus still gets a row.
    document = corpus.get(doc_id, "")
    if isinstance(document, Document):
        return (document.title or document.text)[:SNIPPET_CHARS], document.as_text()
    return document[:SNIPPET_CHARS], document


def _relevant(qrels: Qrels, query_id: str) -> list[tuple[str, int]]:
    judged = qrels.get(query_id, {})
    return sorted(((doc, grade) for doc, grade in judged.items() if grade > 0), key=lambda item: (-item[1], item[0]))


def _rank_of(ranking: Sequence[str]) -> dict[str, int]:
    return {doc: position for position, doc in enumerate(ranking, start=1)}


def word_jaccard(first: str, second: str) -> float:
    """Jaccard overlap of lowercase word sets: ``|A ∩ B| / |A ∪ B|`` (0 when both are empty).

    Args:
        first: A text.
        second: Another text.

    Returns:
        The overlap in ``[0, 1]``.
    """
    a = set(_WORD.findall(first.lower()))
    b = set(_WORD.findall(second.lower()))
    union = a | b
    return len(a & b) / len(union) if union else 0.0


def compare_queries(
    values_a: Mapping[str, float],
    values_b: Mapping[str, float],
    run_a: RankedRun,
    run_b: RankedRun,
    qrels: Qrels,
    queries: Mapping[str, str],
    corpus: Corpus,
    *,
    metric: str = "",
    n: int = 10,
    k: int = 10,
) -> QueryComparison:
    """The ``n`` queries that improved most and the ``n`` that regressed most from A to B.

    Args:
        values_a: ``{query_id: value}`` of model A (e.g. ``per_query(...)["ndcg@10"]``).
        values_b: ``{query_id: value}`` of model B; same query ids as A.
        run_a: Model A's results per query (ranked ids or ``{doc_id: score}``).
        run_b: Model B's results per query.
        qrels: ``{query_id: {doc_id: grade}}``.
        queries: ``{query_id: text}``; a missing text is reported as ``""``.
        corpus: ``{doc_id: Document or text}``, e.g. ``BeirDataset.corpus``.
        metric: Name recorded in the result.
        n: How many improved and regressed queries to list.
        k: How many top results of each model to list.

    Returns:
        Improvements (largest first) and regressions (largest drop first); ties go by query id.
        Queries whose value did not change appear in neither list.

    Raises:
        InvalidArgumentError: ``n`` or ``k`` below 1, or values of A and B over different queries.
    """
    if n < 1 or k < 1:
        raise InvalidArgumentError(f"n and k must be at least 1, got n={n}, k={k}")
    query_ids, a, b = paired_values(values_a, values_b)
    changes = [(qid, float(va), float(vb)) for qid, va, vb in zip(query_ids, a, b, strict=True)]
    improved = sorted((c for c in changes if c[2] > c[1]), key=lambda c: (c[1] - c[2], c[0]))
    regressed = sorted((c for c in changes if c[2] < c[1]), key=lambda c: (c[2] - c[1], c[0]))

    def describe(qid: str, value_a: float, value_b: float) -> QueryChange:
        ranking_a, ranking_b = _ranking(run_a, qid), _ranking(run_b, qid)
        ranks_a, ranks_b = _rank_of(ranking_a), _rank_of(ranking_b)
        relevant = [
            RelevantDocument(
                doc_id=doc,
                grade=grade,
                snippet=_document_text(corpus, doc)[0],
                rank_a=ranks_a.get(doc),
                rank_b=ranks_b.get(doc),
            )
            for doc, grade in _relevant(qrels, qid)
        ]
        return QueryChange(
            query_id=qid,
            query=queries.get(qid, ""),
            value_a=value_a,
            value_b=value_b,
            delta=value_b - value_a,
            relevant=relevant,
            top_a=ranking_a[:k],
            top_b=ranking_b[:k],
        )

    return QueryComparison(
        metric=metric,
        n_queries=len(changes),
        n_improved=len(improved),
        n_regressed=len(regressed),
        improved=[describe(*c) for c in improved[:n]],
        regressed=[describe(*c) for c in regressed[:n]],
    )


def categorise_failures(
    run: RankedRun,
    qrels: Qrels,
    queries: Mapping[str, str],
    corpus: Corpus,
    *,
    overlap_threshold: float = DEFAULT_OVERLAP_THRESHOLD,
) -> FailureReport:
    """Tag each query's failures under one model.

    Categories (a query may have several, or none):

    * ``relevant_not_in_top_100``: no relevant document among the first
      :data:`RETRIEVAL_DEPTH` results (or among all results, if fewer were retrieved).
    * ``ranked_below_10``: a relevant document is in the top 100, but none in the top
      :data:`RANK_CUTOFF`.
    * ``low_lexical_overlap``: the query shares few words with every relevant document;
      ``max_d Jaccard(words(query), words(d)) < overlap_threshold``, with words the lowercase
      ``\\w+`` tokens of the query and of the document's title and text (stop-words included).
      This flags vocabulary mismatch, which lexical retrievers cannot bridge.

    Args:
        run: Results per query (ranked ids or ``{doc_id: score}``).
        qrels: ``{query_id: {doc_id: grade}}``; queries with no relevant document are skipped.
        queries: ``{query_id: text}``.
        corpus: ``{doc_id: Document or text}``.
        overlap_threshold: Jaccard below which overlap counts as low.

    Returns:
        Per-query categories, in qrels order, and the count of each category.

    Raises:
        InvalidArgumentError: ``overlap_threshold`` outside ``[0, 1]``.
    """
    if not 0.0 <= overlap_threshold <= 1.0:
        raise InvalidArgumentError(f"overlap_threshold must be in [0, 1], got {overlap_threshold}")
    counts: dict[str, int] = dict.fromkeys(("relevant_not_in_top_100", "ranked_below_10", "low_lexical_overlap"), 0)
    failures: list[QueryFailure] = []
    for qid in qrels:
        relevant = _relevant(qrels, qid)
        if not relevant:
            continue
        ranks = _rank_of(_ranking(run, qid)[:RETRIEVAL_DEPTH])
        found = [ranks[doc] for doc, _ in relevant if doc in ranks]
        first = min(found) if found else None
        text = queries.get(qid, "")
        overlap = max(word_jaccard(text, _document_text(corpus, doc)[1]) for doc, _ in relevant)
        categories: list[FailureCategory] = []
        if first is None:
            categories.append("relevant_not_in_top_100")
        elif first > RANK_CUTOFF:
            categories.append("ranked_below_10")
        if overlap < overlap_threshold:
            categories.append("low_lexical_overlap")
        for category in categories:
            counts[category] += 1
        failures.append(
            QueryFailure(
                query_id=qid, query=text, first_relevant_rank=first, lexical_overlap=overlap, categories=categories
            )
        )
    return FailureReport(counts=counts, queries=failures)
