"""Corpus vectors in the evaluation cache: the key evaluation uses, and storing vectors made elsewhere.

A fine-tuning run embeds the whole corpus with the base (for mining, validation and the base's test
score) and with the result (for its test score). ``store_corpus_vectors`` puts those vectors where a
later evaluation of the registered models would look, so that evaluation does not embed the same
corpus again.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import numpy.typing as npt

from rag_factory.data.beir import BeirDataset
from rag_factory.models.embedding.loader import CustomModelLoader
from rag_factory.models.embedding.registry import ModelRegistry
from rag_factory.models.evaluation.embedding_cache import CacheKey, CorpusEmbeddingCache
from rag_factory.models.evaluation.model_resolution import ResolvedModel, resolve_model

logger = logging.getLogger(__name__)

# The one backend that embeds as the fine-tuning run does: the model's saved sentence-transformers
# pipeline, pooling included. The huggingface backend pools as its load_config says (cls, max, ...),
# which a sentence-transformers load of the same directory would not follow.
_SAME_PIPELINE_BACKEND = "sentence_transformers"


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
