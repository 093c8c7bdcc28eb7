"""Retrieval metrics on hand-computed cases, edge cases and bad arguments."""

from __future__ import annotations

import math

import pytest

from rag_factory.errors import InvalidArgumentError
from rag_factory.retrieval.metrics import (
    METRICS,
    MetricFunction,
    RankedJudgements,
    evaluate_run,
    parse_metric,
    per_query,
    rank_documents,
)

# One query, ranked d3, d1, d4, d2 -> grades [0, 2, 0, 1]; relevant: d1 (2), d2 (1), d5 (1, never retrieved).
QRELS = {"q1": {"d1": 2, "d2": 1, "d3": 0, "d5": 1}}
RUN = {"q1": {"d3": 0.9, "d1": 0.8, "d4": 0.7, "d2": 0.6}}
LOG2_3 = math.log2(3)


HAND_COMPUTED = dict(
    [
        # DCG@3 = 0/log2(2) + 2/log2(3) + 0/log2(4); IDCG@3 = 2/log2(2) + 1/log2(3) + 1/log2(4)
        ("ndcg@3", (2 / LOG2_3) / (2 + 1 / LOG2_3 + 0.5)),
        # DCG = 2/log2(3) + 1/log2(5); IDCG over all three relevant = 2 + 1/log2(3) + 1/2
        ("ndcg", (2 / LOG2_3 + 1 / math.log2(5)) / (2 + 1 / LOG2_3 + 0.5)),
        ("mrr@10", 1 / 2),  # first relevant at rank 2
        ("mrr@1", 0.0),  # rank 2 is outside the top 1
        ("recall@2", 1 / 3),  # d1 of {d1, d2, d5}
        ("recall@4", 2 / 3),  # d1, d2 of {d1, d2, d5}
        ("precision@2", 1 / 2),  # d1 of {d3, d1}
        ("precision@10", 2 / 10),  # k stays the denominator though only 4 were retrieved
        ("map", (1 / 2 + 2 / 4) / 3),  # P@2 and P@4 at the relevant ranks, over 3 relevant
        ("map@2", (1 / 2) / 3),  # only rank 2 is inside the cut; still over 3 relevant
        ("hit_rate@1", 0.0),
        ("hit_rate@2", 1.0),
    ]
)


@pytest.mark.parametrize(("metric", "expected"), HAND_COMPUTED.items(), ids=list(HAND_COMPUTED))
def test_hand_computed_value(metric: str, expected: float) -> None:
    assert evaluate_run(RUN, QRELS, [metric])[metric] == pytest.approx(expected, abs=1e-12)


def test_ndcg_uses_linear_gain() -> None:
    # Ranking y (1), x (3): DCG = 1 + 3/log2(3); ideal x, y: IDCG = 3 + 1/log2(3).
    value = evaluate_run({"q": {"y": 2.0, "x": 1.0}}, {"q": {"x": 3, "y": 1}}, ["ndcg@10"])["ndcg@10"]
    assert value == pytest.approx((1 + 3 / LOG2_3) / (3 + 1 / LOG2_3), abs=1e-12)


def test_ties_break_by_doc_id_descending() -> None:
    assert rank_documents({"a": 1.0, "c": 1.0, "b": 1.0, "z": 0.5}) == ["c", "b", "a", "z"]


def test_tied_relevant_document_ranked_after_higher_ids() -> None:
    # a, b, c tie; trec_eval orders them c, b, a, so the relevant 'a' sits at rank 3.
    assert evaluate_run({"q": {"a": 1.0, "b": 1.0, "c": 1.0}}, {"q": {"a": 1}}, ["mrr@10"])["mrr@10"] == 1 / 3


def test_negative_grades_count_as_not_relevant() -> None:
    # 'n' (grade -1) at rank 1 adds no gain; 'o' at rank 2 gives 1/log2(3) over an ideal of 1.
    values = per_query({"q": {"n": 2.0, "o": 1.0}}, {"q": {"n": -1, "o": 1}}, ["ndcg@10", "mrr@10"])
    assert values["ndcg@10"]["q"] == pytest.approx(1 / LOG2_3)
    assert values["mrr@10"]["q"] == 0.5


@pytest.mark.parametrize("metric", ["ndcg@10", "mrr@10", "recall@10", "precision@10", "map", "hit_rate@10"])
def test_query_with_only_zero_grades_scores_zero(metric: str) -> None:
    assert per_query({"q": {"x": 1.0}}, {"q": {"x": 0}}, [metric])[metric] == {"q": 0.0}


@pytest.mark.parametrize(
    "run",
    [{"q1": {"d1": 1.0}}, {"q1": {"d1": 1.0}, "q2": {}}],
    ids=["query-missing-from-run", "empty-ranking"],
)
def test_unanswered_query_scores_zero_and_counts_in_mean(run: dict[str, dict[str, float]]) -> None:
    qrels = {"q1": {"d1": 1}, "q2": {"d2": 1}}
    assert per_query(run, qrels, ["ndcg@10"])["ndcg@10"] == {"q1": 1.0, "q2": 0.0}
    assert evaluate_run(run, qrels, ["ndcg@10"]) == {"ndcg@10": 0.5}


def test_queries_without_judgements_are_ignored() -> None:
    run = {"q1": {"d1": 1.0}, "unjudged": {"d9": 1.0}}
    assert per_query(run, {"q1": {"d1": 1}}, ["mrr@10"]) == {"mrr@10": {"q1": 1.0}}


def test_k_larger_than_ranking_uses_whole_ranking() -> None:
    assert evaluate_run(RUN, QRELS, ["ndcg@1000"])["ndcg@1000"] == pytest.approx(
        evaluate_run(RUN, QRELS, ["ndcg"])["ndcg"]
    )


def test_every_ranking_empty_scores_zero() -> None:
    assert evaluate_run({"q": {}}, {"q": {"d": 1}}, list(METRICS.keys() - {"precision"}) + ["precision@5"]) == {
        "ndcg": 0.0,
        "mrr": 0.0,
        "recall": 0.0,
        "map": 0.0,
        "hit_rate": 0.0,
        "precision@5": 0.0,
    }


def test_results_are_keyed_by_the_names_given() -> None:
    assert list(evaluate_run(RUN, QRELS, ["NDCG@3", "map"])) == ["NDCG@3", "map"]


@pytest.mark.parametrize(
    ("name", "expected"),
    [("ndcg@10", ("ndcg", 10)), (" MRR@5 ", ("mrr", 5)), ("map", ("map", None)), ("hit_rate@1", ("hit_rate", 1))],
    ids=["ndcg", "case-and-spaces", "no-cutoff", "hit-rate"],
)
def test_parse_metric(name: str, expected: tuple[str, int | None]) -> None:
    assert parse_metric(name) == expected


@pytest.mark.parametrize("name", ["ndcg@0", "ndcg@-1", "ndcg@ten", "ndcg@", "recall@1.5"])
def test_non_positive_or_malformed_k_is_rejected(name: str) -> None:
    with pytest.raises(InvalidArgumentError, match="k must be a positive integer"):
        parse_metric(name)


def test_unknown_metric_lists_valid_names() -> None:
    with pytest.raises(InvalidArgumentError, match="valid: hit_rate, map, mrr, ndcg, precision, recall"):
        evaluate_run(RUN, QRELS, ["bleu@4"])


def test_precision_needs_a_cutoff() -> None:
    with pytest.raises(InvalidArgumentError, match="precision needs a cut-off"):
        parse_metric("precision")


def test_run_sharing_no_query_with_qrels_is_rejected() -> None:
    with pytest.raises(InvalidArgumentError, match="share no query id"):
        evaluate_run({"1": {"d": 1.0}}, {"q1": {"d": 1}})


def test_empty_qrels_are_rejected() -> None:
    with pytest.raises(InvalidArgumentError, match="qrels contain no queries"):
        evaluate_run({"q": {"d": 1.0}}, {})


def test_nan_score_is_rejected() -> None:
    with pytest.raises(InvalidArgumentError, match="NaN"):
        evaluate_run({"q": {"d": math.nan}}, {"q": {"d": 1}})


def test_no_metrics_is_rejected() -> None:
    with pytest.raises(InvalidArgumentError, match="no metrics"):
        per_query(RUN, QRELS, [])


@pytest.mark.parametrize("function", METRICS.values(), ids=list(METRICS))
@pytest.mark.parametrize("k", [0, -1], ids=["zero", "negative"])
def test_metric_functions_reject_non_positive_k(function: MetricFunction, k: int) -> None:
    judged = RankedJudgements.from_run(RUN, QRELS)
    with pytest.raises(InvalidArgumentError, match="k must be a positive integer"):
        function(judged, k)
