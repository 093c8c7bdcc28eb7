"""Exact (brute-force) dense retrieval over a BEIR split, and its retrieval metrics."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from rag_factory.data.beir import BeirDataset
from rag_factory.errors import DatasetError, InvalidArgumentError
from rag_factory.retrieval.metrics import DEFAULT_METRICS, evaluate_run, per_query

Encoder = Callable[[Sequence[str]], npt.NDArray[np.float32]]
Run = dict[str, dict[str, float]]


@dataclass
class RetrievalEvaluation:
    """Metrics of one model on one split, with what is needed for paired tests and error analysis."""

    metrics: dict[str, float]
    per_query: dict[str, dict[str, float]]  # metric -> query id -> value
    run: Run  # query id -> top documents and scores
    doc_vectors: npt.NDArray[np.float32]  # the corpus as searched, in dataset.corpus order


def search(
    query_vectors: npt.NDArray[np.float32],
    doc_vectors: npt.NDArray[np.float32],
    query_ids: Sequence[str],
    doc_ids: Sequence[str],
    top_k: int = 100,
) -> Run:
    """Top-``top_k`` documents per query by dot product (cosine for normalised vectors).

    Raises:
        InvalidArgumentError: ``top_k`` is not positive or the dimensions differ.
    """
    if top_k <= 0:
        raise InvalidArgumentError(f"top_k must be positive, got {top_k}")
    if query_vectors.shape[1] != doc_vectors.shape[1]:
        raise InvalidArgumentError(
            f"query vectors have dimension {query_vectors.shape[1]} but documents {doc_vectors.shape[1]}"
        )
    k = min(top_k, len(doc_ids))
    run: Run = {}
    for start in range(0, len(query_ids), 256):  # (256, docs) score blocks keep memory flat
        scores = query_vectors[start : start + 256] @ doc_vectors.T
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        for row, qid in enumerate(query_ids[start : start + 256]):
            run[qid] = {doc_ids[j]: float(scores[row, j]) for j in top[row]}
    return run


def evaluate_encoder(
    encode: Encoder,
    dataset: BeirDataset,
    split: str = "test",
    *,
    metrics: Sequence[str] = DEFAULT_METRICS,
    top_k: int = 100,
    doc_vectors: npt.NDArray[np.float32] | None = None,
) -> RetrievalEvaluation:
    """Embed the corpus and the split's queries, search exactly, and score the run.

    Args:
        encode: Texts to vectors (e.g. ``model.encode``).
        dataset: A BEIR dataset.
        split: Which qrels split to evaluate.
        metrics: Metric names such as ``"ndcg@10"``.
        top_k: Documents retrieved per query.
        doc_vectors: Precomputed corpus vectors in ``dataset.corpus`` order (skips embedding).

    Raises:
        DatasetError: The split has no judged queries.
    """
    qrels = dataset.split(split)
    if not qrels:
        raise DatasetError(f"split {split!r} of {dataset.name!r} has no judged queries")
    doc_ids = list(dataset.corpus)
    if doc_vectors is None:
        doc_vectors = encode([dataset.corpus[d].as_text() for d in doc_ids])
    query_ids = list(qrels)
    query_vectors = encode([dataset.queries[q] for q in query_ids])
    run = search(query_vectors, doc_vectors, query_ids, doc_ids, top_k)
    return RetrievalEvaluation(
        metrics=evaluate_run(run, qrels, metrics),
        per_query=per_query(run, qrels, metrics),
        run=run,
        doc_vectors=doc_vectors,
    )
