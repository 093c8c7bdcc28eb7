"""The embedding-space summary of one evaluation: the geometry of its query and document vectors."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, Field
from threadpoolctl import threadpool_limits

from rag_factory.models.evaluation import embedding_space

SPACE_SAMPLE = 2000
"""At most this many documents enter the embedding-space metrics (they are O(n^2))."""


class EmbeddingSpaceSummary(BaseModel):
    """Geometry of the evaluated vectors; see :mod:`rag_factory.models.evaluation.embedding_space`."""

    isotropy: float = Field(description="Partition-function isotropy of documents (1 = isotropic).")
    uniformity: float = Field(description="Wang & Isola uniformity of documents (lower = more uniform).")
    alignment: float = Field(description="Wang & Isola alignment of queries and their best relevant document.")
    mean_cosine: float = Field(description="Mean pairwise cosine of documents (near 1 = collapsed).")
    effective_rank: float = Field(description="Roy & Vetterli effective rank of the document vectors.")
    query_document_silhouette: float = Field(
        description="Silhouette of the labels query/document (near 0: one shared region; high: a modality gap)."
    )
    documents_sampled: int = Field(description="Documents used (a fixed random sample of large corpora).")


def summarise_space(
    query_vectors: npt.NDArray[np.float32],
    doc_vectors: npt.NDArray[np.float32],
    positives: Sequence[int],
    *,
    sample: int = SPACE_SAMPLE,
    seed: int = 0,
) -> EmbeddingSpaceSummary | None:
    """Embedding-space metrics of one evaluation.

    Args:
        query_vectors: ``(queries, dim)``.
        doc_vectors: ``(documents, dim)``.
        positives: For each query, the row in ``doc_vectors`` of its best relevant document.
        sample: Documents used at most (a fixed random sample beyond that).
        seed: Seed of the sample.

    Returns:
        The summary, or None with fewer than two queries or documents.
    """
    if len(query_vectors) < 2 or len(doc_vectors) < 2:
        return None
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(len(doc_vectors), size=sample, replace=False)) if len(doc_vectors) > sample else None
    docs = doc_vectors if rows is None else doc_vectors[rows]
    both = np.concatenate([query_vectors, docs])
    labels = ["query"] * len(query_vectors) + ["document"] * len(docs)
    # One BLAS thread: on 2 shared cores, threaded eigh/SVD of these small matrices was measured up to
    # 100x slower (6.8 s against 0.07 s) whenever another process was busy.
    with threadpool_limits(limits=1):
        return _summary(query_vectors, doc_vectors, docs, both, labels, positives)


def _summary(
    query_vectors: npt.NDArray[np.float32],
    doc_vectors: npt.NDArray[np.float32],
    docs: npt.NDArray[np.float32],
    both: npt.NDArray[np.float32],
    labels: list[str],
    positives: Sequence[int],
) -> EmbeddingSpaceSummary:
    return EmbeddingSpaceSummary(
        isotropy=embedding_space.isotropy(docs),
        uniformity=embedding_space.uniformity(docs),
        alignment=embedding_space.alignment(query_vectors, doc_vectors[np.asarray(positives)]),
        mean_cosine=embedding_space.mean_pairwise_cosine(docs),
        effective_rank=embedding_space.effective_rank(docs),
        query_document_silhouette=embedding_space.silhouette_score(both, labels),
        documents_sampled=len(docs),
    )
