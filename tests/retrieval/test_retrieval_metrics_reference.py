"""Retrieval metrics agree with trec_eval (through pytrec_eval) to 1e-6."""

from __future__ import annotations

import numpy as np
import pytest

from rag_factory.retrieval.metrics import per_query

pytrec_eval = pytest.importorskip("pytrec_eval")

CUTOFFS = (1, 3, 5, 10, 100)
# Our name -> trec_eval measure (its key in pytrec_eval's output).
CUT_MEASURES = {"ndcg": "ndcg_cut", "recall": "recall", "precision": "P", "map": "map_cut", "hit_rate": "success"}
FULL_MEASURES = {"ndcg": "ndcg", "map": "map", "mrr": "recip_rank"}

Run = dict[str, dict[str, float]]
Qrels = dict[str, dict[str, int]]


def _random_run(seed: int = 7, n_queries: int = 200, n_docs: int = 2000) -> tuple[Run, Qrels]:
    """A BEIR-like run: 100 results per query, scores rounded so that ties occur, graded qrels."""
    rng = np.random.default_rng(seed)
    doc_ids = [f"doc{i}" for i in range(n_docs)]
    run: Run = {}
    qrels: Qrels = {}
    for q in range(n_queries):
        qid = f"q{q}"
        judged = rng.choice(n_docs, size=int(rng.integers(1, 8)), replace=False)
        # Mostly relevant (1 or 2), some judged non-relevant (0).
        qrels[qid] = {doc_ids[d]: int(rng.choice([0, 1, 1, 2])) for d in judged}
        if q % 50 == 0:
            continue  # unanswered query: trec_eval -c scores it 0
        retrieved = rng.choice(n_docs, size=100 if q % 37 else 7, replace=False)
        # Put some judged documents in the list, at random places.
        retrieved[: len(judged) // 2] = judged[: len(judged) // 2]
        scores = rng.random(len(retrieved))
        scores[: len(judged) // 2] += rng.random()  # judged documents tend to rank high, as in a real run
        scores = np.round(scores, 2)
        run[qid] = {doc_ids[d]: float(s) for d, s in zip(retrieved, scores, strict=True)}
    run["not-judged"] = {"doc1": 1.0}
    return run, qrels


EDGE_QRELS: Qrels = {
    "ties": {"a": 1, "b": 0, "c": 2, "z": 1},
    "zero-grades-only": {"x": 0},
    "empty-ranking": {"m": 1},
    "negative-grade": {"n": -1, "o": 1},
    "short-list": {"s1": 1, "s2": 1, "s3": 2},
}
EDGE_RUN: Run = {
    "ties": {"a": 0.5, "b": 0.5, "c": 0.5, "d": 0.1},
    "zero-grades-only": {"x": 1.0},
    "empty-ranking": {},
    "negative-grade": {"n": 2.0, "o": 1.0},
    "short-list": {"s2": 0.3, "other": 0.9},
    "not-judged": {"a": 1.0},
}


def _reference(run: Run, qrels: Qrels) -> dict[str, dict[str, float]]:
    cuts = ",".join(str(k) for k in CUTOFFS)
    measures = {f"{measure}.{cuts}" for measure in CUT_MEASURES.values()} | set(FULL_MEASURES.values())
    evaluated: dict[str, dict[str, float]] = pytrec_eval.RelevanceEvaluator(qrels, measures).evaluate(run)
    return evaluated


def _expected(reference: dict[str, dict[str, float]], qid: str, key: str) -> float:
    # pytrec_eval leaves out queries absent from the run; trec_eval -c (our convention) scores them 0.
    return reference.get(qid, {}).get(key, 0.0)


def _assert_agrees(run: Run, qrels: Qrels) -> None:
    reference = _reference(run, qrels)
    names = [f"{name}@{k}" for name in CUT_MEASURES for k in CUTOFFS] + list(FULL_MEASURES)
    names += [f"mrr@{k}" for k in CUTOFFS]
    ours = per_query(run, qrels, names)
    assert set(ours["ndcg@10"]) == set(qrels)
    for qid in qrels:
        for name, measure in CUT_MEASURES.items():
            for k in CUTOFFS:
                expected = _expected(reference, qid, f"{measure}_{k}")
                assert ours[f"{name}@{k}"][qid] == pytest.approx(expected, abs=1e-6), (qid, name, k)
        for name, measure in FULL_MEASURES.items():
            assert ours[name][qid] == pytest.approx(_expected(reference, qid, measure), abs=1e-6), (qid, name)
        for k in CUTOFFS:
            # trec_eval has no MRR cut-off: RR@k is RR when the first relevant rank 1/RR is <= k.
            rr = _expected(reference, qid, "recip_rank")
            expected = rr if rr > 0 and 1 / rr <= k + 1e-9 else 0.0
            assert ours[f"mrr@{k}"][qid] == pytest.approx(expected, abs=1e-6), (qid, k)


def test_agrees_with_trec_eval_on_random_run() -> None:
    _assert_agrees(*_random_run())


def test_agrees_with_trec_eval_on_edge_cases() -> None:
    _assert_agrees(EDGE_RUN, EDGE_QRELS)


def test_mean_agrees_with_trec_eval_on_random_run() -> None:
    run, qrels = _random_run(seed=11)
    reference = _reference(run, qrels)
    ours = per_query(run, qrels, ["ndcg@10"])["ndcg@10"]
    expected = np.mean([_expected(reference, qid, "ndcg_cut_10") for qid in qrels])
    assert np.mean(list(ours.values())) == pytest.approx(expected, abs=1e-6)
