"""Retrieval metrics (nDCG, MRR, recall, precision, MAP, hit rate) that agree with ``trec_eval``.

A *run* maps each query id to ``{doc_id: score}``; *qrels* map each query id to
``{doc_id: grade}``.  The conventions are those of ``trec_eval`` (and therefore of
``pytrec_eval`` and ranx), so numbers can be compared with published results:

* Documents are ranked by score, highest first; equal scores are ordered by doc id,
  *descending* (``trec_eval`` sorts on ``(score, docno)`` in reverse).
* A document is relevant when its grade is ``>= 1``.  Gains are the grades themselves
  (linear, not ``2**grade - 1``); negative grades count as 0.
* Queries that appear in the run but not in the qrels are ignored.
* Every query in the qrels is scored.  A query missing from the run, or with an empty
  ranking, scores 0 (``trec_eval -c``), and so does a query whose judgements are all 0.

Metrics are computed for all queries at once on a ``(queries, ranks)`` matrix of grades
(:class:`RankedJudgements`); :func:`per_query` and :func:`evaluate_run` take metric names
such as ``"ndcg@10"``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from rag_factory.arrays import FloatArray
from rag_factory.errors import InvalidArgumentError, describe_choices

Run = Mapping[str, Mapping[str, float]]
Qrels = Mapping[str, Mapping[str, int]]

DEFAULT_METRICS: tuple[str, ...] = ("ndcg@10", "mrr@10", "recall@100", "precision@10", "map@100", "hit_rate@10")


def rank_documents(scores: Mapping[str, float]) -> list[str]:
    """Order doc ids best first, exactly as ``trec_eval`` does.

    Args:
        scores: ``{doc_id: score}`` for one query.

    Returns:
        Doc ids by score descending; equal scores by doc id descending.

    Raises:
        InvalidArgumentError: A score is NaN, which has no place in an order.
    """
    if any(math.isnan(score) for score in scores.values()):
        raise InvalidArgumentError("run scores must not be NaN")
    # reverse=True on (score, doc_id) gives trec_eval's tie-break: doc id descending.
    return [doc for doc, _ in sorted(scores.items(), key=lambda item: (item[1], item[0]), reverse=True)]


@dataclass(frozen=True)
class RankedJudgements:
    """The grades of each query's ranked documents, ready for vectorised metrics.

    Attributes:
        query_ids: Query ids, one per row, in qrels order.
        gains: ``(queries, depth)`` grade of the document at each rank (clipped at 0);
            0 past the end of a short ranking.
        ideal: ``(queries, judged)`` every judged grade of the query, sorted descending.
        n_relevant: ``(queries,)`` number of judged documents with grade ``>= 1``.
    """

    query_ids: tuple[str, ...]
    gains: FloatArray
    ideal: FloatArray
    n_relevant: FloatArray

    @classmethod
    def from_run(cls, run: Run, qrels: Qrels, depth: int | None = None) -> RankedJudgements:
        """Judge a run against qrels.

        Args:
            run: ``{query_id: {doc_id: score}}``.
            qrels: ``{query_id: {doc_id: grade}}``; defines which queries are scored.
            depth: Keep only this many ranks (the largest cut-off needed); ``None`` keeps all.

        Returns:
            The judged rankings of every query in ``qrels``.

        Raises:
            InvalidArgumentError: ``qrels`` is empty, the run shares no query id with it, a
                score is NaN, or ``depth < 1``.
        """
        if not qrels:
            raise InvalidArgumentError("qrels contain no queries; nothing to evaluate")
        if depth is not None and depth < 1:
            raise InvalidArgumentError(f"depth must be a positive integer, got {depth}")
        if run and not any(qid in qrels for qid in run):
            # Almost always a key mismatch (int vs str ids, another split): fail loudly, not with zeros.
            raise InvalidArgumentError(
                f"run and qrels share no query id; run has e.g. {next(iter(run))!r}, "
                f"qrels have e.g. {next(iter(qrels))!r}"
            )
        query_ids = tuple(qrels)
        rankings = [rank_documents(run.get(qid, {})) for qid in query_ids]
        longest = max((len(ranking) for ranking in rankings), default=0)
        width = longest if depth is None else min(depth, longest)
        gains = np.zeros((len(query_ids), width))
        judged = max(len(qrels[qid]) for qid in query_ids)
        ideal = np.zeros((len(query_ids), judged))
        n_relevant = np.zeros(len(query_ids))
        for row, (qid, ranking) in enumerate(zip(query_ids, rankings, strict=True)):
            grades = qrels[qid]
            gains[row, : min(width, len(ranking))] = [max(grades.get(doc, 0), 0) for doc in ranking[:width]]
            positive = sorted((grade for grade in grades.values() if grade > 0), reverse=True)
            ideal[row, : len(positive)] = positive
            n_relevant[row] = len(positive)
        return cls(query_ids=query_ids, gains=gains, ideal=ideal, n_relevant=n_relevant)


def _top(matrix: FloatArray, k: int | None) -> FloatArray:
    # A negative k would silently slice from the end, so it is refused here for every metric.
    if k is not None and k < 1:
        raise InvalidArgumentError(f"k must be a positive integer, got {k}")
    return matrix[:, :k]


def _discounts(length: int) -> FloatArray:
    # 1 / log2(rank + 1) for ranks 1..length
    return 1.0 / np.log2(np.arange(2, length + 2, dtype=np.float64))


def _safe_divide(numerator: FloatArray, denominator: FloatArray) -> FloatArray:
    # Queries with nothing to find score 0, as in trec_eval.
    result = np.zeros_like(numerator)
    np.divide(numerator, denominator, out=result, where=denominator > 0)
    return result


def ndcg(judged: RankedJudgements, k: int | None) -> FloatArray:
    """Normalised discounted cumulative gain at k (``trec_eval`` ``ndcg_cut``).

    ``DCG@k = sum_{i=1..k} g_i / log2(i + 1)`` with ``g_i`` the grade at rank ``i``;
    ``nDCG@k = DCG@k / IDCG@k`` where IDCG ranks every judged document by grade.

    Args:
        judged: Judged rankings.
        k: Cut-off; ``None`` for the whole ranking.

    Returns:
        ``(queries,)`` nDCG per query, 0 when the query has no relevant document.

    Raises:
        InvalidArgumentError: ``k`` below 1.
    """
    gains = _top(judged.gains, k)
    ideal = _top(judged.ideal, k)
    dcg = gains @ _discounts(gains.shape[1])
    idcg = ideal @ _discounts(ideal.shape[1])
    return _safe_divide(dcg, idcg)


def mrr(judged: RankedJudgements, k: int | None) -> FloatArray:
    """Reciprocal rank of the first relevant document within the top k (``recip_rank``).

    ``RR@k = 1 / rank_first_relevant`` if that rank ``<= k``, else 0; MRR is its mean.

    Args:
        judged: Judged rankings.
        k: Cut-off; ``None`` for the whole ranking.

    Returns:
        ``(queries,)`` reciprocal rank per query.

    Raises:
        InvalidArgumentError: ``k`` below 1.
    """
    relevant = _top(judged.gains, k) > 0
    if relevant.shape[1] == 0:  # every ranking is empty; argmax needs at least one column
        return np.zeros(relevant.shape[0])
    first = relevant.argmax(axis=1)
    return np.where(relevant.any(axis=1), 1.0 / (first + 1.0), 0.0)


def recall(judged: RankedJudgements, k: int | None) -> FloatArray:
    """Share of the relevant documents found in the top k (``trec_eval`` ``recall``).

    ``Recall@k = |relevant ∩ top k| / |relevant|``.

    Args:
        judged: Judged rankings.
        k: Cut-off; ``None`` for the whole ranking.

    Returns:
        ``(queries,)`` recall per query, 0 when the query has no relevant document.

    Raises:
        InvalidArgumentError: ``k`` below 1.
    """
    found = (_top(judged.gains, k) > 0).sum(axis=1).astype(np.float64)
    return _safe_divide(found, judged.n_relevant)


def precision(judged: RankedJudgements, k: int | None) -> FloatArray:
    """Share of the top k that is relevant (``trec_eval`` ``P``).

    ``Precision@k = |relevant ∩ top k| / k``; the denominator is k even when fewer than k
    documents were retrieved.

    Args:
        judged: Judged rankings.
        k: Cut-off (required).

    Returns:
        ``(queries,)`` precision per query.

    Raises:
        InvalidArgumentError: ``k`` is ``None`` or below 1.
    """
    if k is None:
        raise InvalidArgumentError("precision needs a cut-off, e.g. 'precision@10'")
    found: FloatArray = (_top(judged.gains, k) > 0).sum(axis=1).astype(np.float64)
    return found / k


def average_precision(judged: RankedJudgements, k: int | None) -> FloatArray:
    """Average precision over the top k (``trec_eval`` ``map`` and ``map_cut``).

    ``AP@k = (1 / |relevant|) * sum_{i<=k, doc i relevant} Precision@i``; the denominator is
    the number of relevant documents, not ``min(k, |relevant|)``.

    Args:
        judged: Judged rankings.
        k: Cut-off; ``None`` for the whole ranking.

    Returns:
        ``(queries,)`` AP per query, 0 when the query has no relevant document.

    Raises:
        InvalidArgumentError: ``k`` below 1.
    """
    relevant = _top(judged.gains, k) > 0
    ranks = np.arange(1, relevant.shape[1] + 1)
    precision_at_rank: FloatArray = relevant.cumsum(axis=1) / ranks
    summed: FloatArray = (precision_at_rank * relevant).sum(axis=1)
    return _safe_divide(summed, judged.n_relevant)


def hit_rate(judged: RankedJudgements, k: int | None) -> FloatArray:
    """Whether any relevant document is in the top k (``trec_eval`` ``success``).

    ``Hit@k = 1 if |relevant ∩ top k| > 0 else 0``.

    Args:
        judged: Judged rankings.
        k: Cut-off; ``None`` for the whole ranking.

    Returns:
        ``(queries,)`` 1.0 or 0.0 per query.

    Raises:
        InvalidArgumentError: ``k`` below 1.
    """
    return np.asarray((_top(judged.gains, k) > 0).any(axis=1), dtype=np.float64)


MetricFunction = Callable[[RankedJudgements, int | None], FloatArray]

METRICS: dict[str, MetricFunction] = {
    "ndcg": ndcg,
    "mrr": mrr,
    "recall": recall,
    "precision": precision,
    "map": average_precision,
    "hit_rate": hit_rate,
}
"""Metric names accepted before ``@k`` in :func:`parse_metric`."""


def parse_metric(name: str) -> tuple[str, int | None]:
    """Split a metric name such as ``"ndcg@10"`` into ``("ndcg", 10)``.

    Args:
        name: ``"<metric>"`` or ``"<metric>@<k>"``, case-insensitive; metrics are the keys of
            :data:`METRICS`.

    Returns:
        The registry key and the cut-off (``None`` when there is no ``@k``).

    Raises:
        InvalidArgumentError: Unknown metric, a k that is not a positive integer, or
            precision without a k.
    """
    base, has_k, cutoff = name.strip().lower().partition("@")
    if base not in METRICS:
        raise InvalidArgumentError(
            f"unknown metric {name!r}; valid: {describe_choices(METRICS)} (optionally '@k', e.g. 'ndcg@10')"
        )
    if not has_k:
        if base == "precision":
            raise InvalidArgumentError("precision needs a cut-off, e.g. 'precision@10'")
        return base, None
    if not cutoff.isdigit() or int(cutoff) <= 0:
        raise InvalidArgumentError(f"metric {name!r}: k must be a positive integer, got {cutoff!r}")
    return base, int(cutoff)


def per_query(run: Run, qrels: Qrels, metrics: Sequence[str] = DEFAULT_METRICS) -> dict[str, dict[str, float]]:
    """Each metric for each query in the qrels (the input of paired significance tests).

    Args:
        run: ``{query_id: {doc_id: score}}``.
        qrels: ``{query_id: {doc_id: grade}}``.
        metrics: Metric names such as ``"ndcg@10"``; see :func:`parse_metric`.

    Returns:
        ``{metric_name: {query_id: value}}``, keyed by the names as given.

    Raises:
        InvalidArgumentError: Bad metric name, empty qrels, or no query shared with the run.
    """
    parsed = {name: parse_metric(name) for name in metrics}
    if not parsed:
        raise InvalidArgumentError(f"no metrics asked for; valid: {describe_choices(METRICS)}")
    cutoffs = [k for _, k in parsed.values()]
    depth = None if None in cutoffs else max(k for k in cutoffs if k is not None)
    judged = RankedJudgements.from_run(run, qrels, depth=depth)
    results: dict[str, dict[str, float]] = {}
    for name, (base, k) in parsed.items():
        values = METRICS[base](judged, k)
        results[name] = dict(zip(judged.query_ids, values.tolist(), strict=True))
    return results


def evaluate_run(run: Run, qrels: Qrels, metrics: Iterable[str] = DEFAULT_METRICS) -> dict[str, float]:
    """Mean of each metric over the queries in the qrels.

    Args:
        run: ``{query_id: {doc_id: score}}``.
        qrels: ``{query_id: {doc_id: grade}}``.
        metrics: Metric names such as ``"ndcg@10"``; see :func:`parse_metric`.

    Returns:
        ``{metric_name: mean value}``.

    Raises:
        InvalidArgumentError: Bad metric name, empty qrels, or no query shared with the run.
    """
    values = per_query(run, qrels, list(metrics))
    return {name: float(np.mean(list(by_query.values()))) for name, by_query in values.items()}
