"""Corpus vectors in the evaluation cache: the key, reading or embedding them, and storing vectors made elsewhere.

An evaluation reads a dataset's corpus vectors from the cache, or embeds the corpus and caches the
vectors (``load_or_embed_corpus``). A fine-tuning run embeds the whole corpus with the base (for mining,
validation and the base's test score) and with the result (for its test score);
``store_corpus_vectors`` puts those vectors where a later evaluation of the registered models would
look, so that evaluation does not embed the same corpus again.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from rag_factory.data.beir import BeirDataset
from rag_factory.models.embedding.loader import CustomModelLoader
from rag_factory.models.embedding.registry import ModelRegistry
from rag_factory.models.evaluation.embedding_cache import CacheKey, CacheStatus, CorpusEmbeddingCache
from rag_factory.models.evaluation.model_resolution import ResolvedModel, resolve_model
from rag_factory.models.evaluation.progress import ProgressCallback, notify

logger = logging.getLogger(__name__)

# The one backend that embeds as the fine-tuning run does: the model's saved sentence-transformers
# pipeline, pooling included. The huggingface backend pools as its load_config says (cls, max, ...),
# which a sentence-transformers load of the same directory would not follow.
_SAME_PIPELINE_BACKEND = "sentence_transformers"

CORPUS_CHUNK = 256
"""Documents embedded between two progress reports."""


@dataclass(frozen=True)
class CorpusVectors:
    """The vectors an evaluation searches, one row per document of ``doc_ids``, and where they came from."""

    doc_ids: list[str]  # the corpus in file order
    vectors: npt.NDArray[np.float32]  # (documents, dim)
    status: CacheStatus
    documents_embedded: int  # 0 on a cache hit
    cache_path: str | None  # the cache folder; None with the cache disabled


def cache_key(resolved: ResolvedModel, dataset_name: str, dataset_hash: str) -> CacheKey:
    """The evaluation cache key of ``resolved``'s corpus vectors for a dataset (``BeirDataset.content_hash``)."""
    model = resolved.model
    return CacheKey(
        model_identity=resolved.identity,
        model_id=resolved.model_id,
        dataset=dataset_name,
        dataset_hash=dataset_hash,
        backend=model.info.backend,
        precision=model.info.precision,
        source=Path(model.info.source).name,
        max_seq_length=model.max_seq_length,
        normalize=model.normalize,
        pooling=model.info.details.get("pooling", ""),
    )


def store_corpus_vectors(
    model_ref: str,
    dataset: BeirDataset,
    vectors: npt.NDArray[np.float32],
    *,
    registry: ModelRegistry,
    cache_dir: str | Path,
    max_seq_length: int,
    loader: CustomModelLoader | None = None,
) -> Path | None:
    """Store ``vectors`` as evaluating ``model_ref`` on its own fp32 backend would cache them.

    The vectors must come from the model loaded as a ``SentenceTransformer`` in fp32, at
    ``max_seq_length`` tokens, L2-normalised, one row per document in ``dataset.corpus`` order. They
    are stored only when that is also how evaluation would embed (``backend="native"`` on a
    sentence-transformers model, unquantised); then evaluation reads them back instead of embedding
    the corpus. Evaluation batches the texts differently, which changes vectors only by float
    rounding (``tests/evaluation/test_corpus_vectors.py`` bounds it at 1e-5), far below what moves
    a ranking metric.

    Returns:
        The cache folder, or None when evaluation would embed differently (nothing is stored).

    Raises:
        ValueError: ``vectors`` is not one row per document of ``dataset``.
    """
    if vectors.ndim != 2 or vectors.shape[0] != len(dataset.corpus):
        raise ValueError(f"expected one vector per document of {dataset.name!r} ({len(dataset.corpus)}), "
                         f"got shape {vectors.shape}")  # fmt: skip
    resolved = resolve_model(model_ref, registry=registry, loader=loader or CustomModelLoader(), backend="native")
    model = resolved.model
    same = (
        model.info.backend == _SAME_PIPELINE_BACKEND
        and model.info.precision == "fp32"
        and model.max_seq_length == max_seq_length
        and model.normalize
        and model.embedding_dim == vectors.shape[1]
    )
    if not same:
        logger.info("not caching corpus vectors of %s: evaluation would embed on %s/%s at %d tokens",
                    model_ref, model.info.backend, model.info.precision, model.max_seq_length)  # fmt: skip
        return None
    return CorpusEmbeddingCache(cache_dir).save(
        cache_key(resolved, dataset.name, dataset.content_hash()), list(dataset.corpus), vectors
    )


def load_or_embed_corpus(
    resolved: ResolvedModel,
    dataset: BeirDataset,
    dataset_hash: str,
    *,
    cache_dir: str | Path | None,
    refresh_cache: bool = False,
    on_progress: ProgressCallback | None = None,
) -> CorpusVectors:
    """``dataset``'s corpus vectors from ``resolved``: read from the cache, or embedded (and then cached).

    Args:
        resolved: The loaded model.
        dataset: The dataset whose corpus is embedded, in file order.
        dataset_hash: ``dataset.content_hash()``, computed once by the caller.
        cache_dir: Corpus-vector cache; None neither reads nor writes one.
        refresh_cache: Embed even on a cache hit, and overwrite the cached vectors.
        on_progress: Receives ``embedding_corpus`` progress, in documents.

    Raises:
        FailedPreconditionError: Cached vectors do not fit the model (another dimension or other documents).
    """
    doc_ids = list(dataset.corpus)
    key = cache_key(resolved, dataset.name, dataset_hash)
    cache = CorpusEmbeddingCache(cache_dir) if cache_dir is not None else None
    dim = resolved.model.embedding_dim
    vectors = cache.load(key, doc_ids, dim) if cache is not None and not refresh_cache else None
    status: CacheStatus = "disabled" if cache is None else "hit" if vectors is not None else "miss"
    documents_embedded = 0
    if vectors is None:
        vectors = _embed_corpus(resolved, [dataset.corpus[d].as_text() for d in doc_ids], on_progress)
        documents_embedded = len(doc_ids)
        if cache is not None:
            cache.save(key, doc_ids, vectors)
            status = "refreshed" if refresh_cache else "miss"
    else:
        notify(on_progress, "embedding_corpus", len(doc_ids), len(doc_ids), "from cache")
    cache_path = str(cache.folder(key)) if cache is not None else None
    return CorpusVectors(doc_ids, vectors, status, documents_embedded, cache_path)


def _embed_corpus(
    resolved: ResolvedModel, texts: Sequence[str], on_progress: ProgressCallback | None
) -> npt.NDArray[np.float32]:
    model = resolved.model
    # Longest first across the whole corpus, so every chunk (and batch) pads little.
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    vectors = np.empty((len(texts), model.embedding_dim), dtype=np.float32)
    notify(on_progress, "embedding_corpus", 0, len(texts))
    for start in range(0, len(order), CORPUS_CHUNK):
        chunk = order[start : start + CORPUS_CHUNK]
        vectors[chunk] = model.encode([texts[i] for i in chunk])
        notify(on_progress, "embedding_corpus", min(start + CORPUS_CHUNK, len(texts)), len(texts))
    return vectors
