"""Error analysis on a tiny hand-built example: changed queries and failure categories."""

from __future__ import annotations

import json

import pytest

from rag_factory.data.beir import Document
from rag_factory.errors import InvalidArgumentError
from rag_factory.models.evaluation.error_analysis import (
    FailureReport,
    QueryComparison,
    RankedRun,
    categorise_failures,
    compare_queries,
    word_jaccard,
)

QUERIES = {"q1": "how do cats sleep", "q2": "vaccine efficacy trial", "q3": "quantum gravity"}
CORPUS: dict[str, Document | str] = {
    "d1": Document("d1", "Cats sleep a lot", "Domestic cats sleep up to sixteen hours."),
    "d2": Document("d2", "", "A randomised vaccine trial measured efficacy in adults."),
    "d3": "Vaccine efficacy trial follow-up report.",
    "d4": Document("d4", "Loop theory of spacetime", "Spin networks and foams."),
}
QRELS = {"q1": {"d1": 1}, "q2": {"d2": 2, "d3": 1, "d9": 0}, "q3": {"d4": 1}, "q4": {"d5": 0}}
VALUES_A = {"q1": 0.2, "q2": 0.9, "q3": 0.5}
VALUES_B = {"q1": 1.0, "q2": 0.3, "q3": 0.5}
RUN_A: RankedRun = {"q1": ["d9", "d1"], "q2": {"d2": 0.9, "d3": 0.8}, "q3": ["d4"]}
RUN_B: RankedRun = {"q1": ["d1", "d9"], "q2": {"d7": 0.9, "d3": 0.8}, "q3": ["d4"]}


@pytest.fixture
def comparison() -> QueryComparison:
    return compare_queries(VALUES_A, VALUES_B, RUN_A, RUN_B, QRELS, QUERIES, CORPUS, metric="ndcg@10", k=1)


def test_improved_and_regressed_queries_are_split(comparison: QueryComparison) -> None:
    assert [change.query_id for change in comparison.improved] == ["q1"]
    assert [change.query_id for change in comparison.regressed] == ["q2"]
    assert (comparison.n_queries, comparison.n_improved, comparison.n_regressed) == (3, 1, 1)


def test_change_carries_query_values_and_top_k(comparison: QueryComparison) -> None:
    change = comparison.improved[0]
    assert (change.query, change.value_a, change.value_b) == ("how do cats sleep", 0.2, 1.0)
    assert change.delta == pytest.approx(0.8)
    assert (change.top_a, change.top_b) == (["d9"], ["d1"])


def test_relevant_documents_have_snippets_and_ranks_under_each_model(comparison: QueryComparison) -> None:
    relevant = comparison.regressed[0].relevant
    # Best grade first; the zero-grade d9 is not relevant; d2 has no title, so its text is the snippet.
    assert [(doc.doc_id, doc.grade, doc.rank_a, doc.rank_b) for doc in relevant] == [
        ("d2", 2, 1, None),
        ("d3", 1, 2, 2),
    ]
    assert relevant[0].snippet.startswith("A randomised vaccine trial")
    assert relevant[1].snippet == "Vaccine efficacy trial follow-up report."


def test_largest_changes_come_first_and_n_limits_the_lists() -> None:
    a = {"q1": 0.0, "q2": 0.0, "q3": 0.0}
    b = {"q1": 0.2, "q2": 0.9, "q3": 0.5}
    result = compare_queries(a, b, RUN_A, RUN_B, QRELS, QUERIES, CORPUS, n=2)
    assert [change.query_id for change in result.improved] == ["q2", "q3"]
    assert result.regressed == []


def test_comparison_serialises_to_json(comparison: QueryComparison) -> None:
    assert QueryComparison.model_validate(json.loads(comparison.model_dump_json())) == comparison


def test_comparison_needs_the_same_queries() -> None:
    with pytest.raises(InvalidArgumentError, match="1 only in A, 0 only in B"):
        compare_queries(VALUES_A, {"q1": 1.0, "q2": 0.3}, RUN_A, RUN_B, QRELS, QUERIES, CORPUS)


def test_comparison_rejects_non_positive_n() -> None:
    with pytest.raises(InvalidArgumentError, match="at least 1"):
        compare_queries(VALUES_A, VALUES_B, RUN_A, RUN_B, QRELS, QUERIES, CORPUS, n=0)


@pytest.fixture
def failures() -> FailureReport:
    run: RankedRun = {
        "q1": [f"x{i}" for i in range(11)] + ["d1"],  # relevant at rank 12
        "q2": [f"x{i}" for i in range(100)] + ["d2"],  # relevant at rank 101
        "q3": {"d4": 0.7, "x1": 0.2},  # relevant at rank 1
    }
    return categorise_failures(run, QRELS, QUERIES, CORPUS)


def test_failure_categories(failures: FailureReport) -> None:
    by_query = {query.query_id: query.categories for query in failures.queries}
    assert by_query == {"q1": ["ranked_below_10"], "q2": ["relevant_not_in_top_100"], "q3": ["low_lexical_overlap"]}


def test_failure_counts_and_first_relevant_rank(failures: FailureReport) -> None:
    assert failures.counts == {"relevant_not_in_top_100": 1, "ranked_below_10": 1, "low_lexical_overlap": 1}
    assert [query.first_relevant_rank for query in failures.queries] == [12, None, 1]


def test_lexical_overlap_is_the_best_relevant_document(failures: FailureReport) -> None:
    # q2 words {vaccine, efficacy, trial} all occur in d3's 6 words: 3 / 6.
    assert failures.queries[1].lexical_overlap == pytest.approx(3 / 6)


def test_query_missing_from_run_is_not_retrieved() -> None:
    report = categorise_failures({}, {"q1": {"d1": 1}}, QUERIES, CORPUS)
    assert report.queries[0].categories == ["relevant_not_in_top_100"]


def test_overlap_threshold_must_be_a_fraction() -> None:
    with pytest.raises(InvalidArgumentError, match="overlap_threshold"):
        categorise_failures({}, QRELS, QUERIES, CORPUS, overlap_threshold=1.5)


@pytest.mark.parametrize(
    ("first", "second", "expected"),
    [
        ("Cats sleep", "cats SLEEP", 1.0),
        ("cats sleep", "dogs sleep", 1 / 3),  # {sleep} / {cats, dogs, sleep}
        ("", "", 0.0),
        ("a, b!", "c", 0.0),
    ],
    ids=["case-insensitive", "partial", "both-empty", "punctuation-ignored"],
)
def test_word_jaccard(first: str, second: str, expected: float) -> None:
    assert word_jaccard(first, second) == pytest.approx(expected)
