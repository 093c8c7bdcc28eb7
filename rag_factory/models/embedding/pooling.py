"""Pooling of token embeddings into sentence embeddings, in numpy so that no backend needs torch."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from rag_factory.arrays import VectorArray
from rag_factory.models.embedding.models import PoolingStrategy


def pool(
    token_embeddings: VectorArray, attention_mask: npt.NDArray[np.int64], strategy: PoolingStrategy
) -> VectorArray:
    """Pool token embeddings, ignoring padding.

    Args:
        token_embeddings: ``(batch, tokens, dim)`` float array.
        attention_mask: ``(batch, tokens)`` with 1 for real tokens and 0 for padding.
        strategy: ``mean`` (masked average), ``max`` (masked max), ``cls`` (first token), or
            ``weighted_mean`` (token i, counted from 1, has weight i: later tokens weigh more).

    Returns:
        ``(batch, dim)`` float32 sentence embeddings.
    """
    mask = attention_mask.astype(np.float32)[:, :, None]  # (batch, tokens, 1)
    if strategy is PoolingStrategy.CLS:
        pooled = token_embeddings[:, 0, :]
    elif strategy is PoolingStrategy.MAX:
        # Padding must never win the max, so it is pushed to -inf-ish first.
        pooled = np.where(mask > 0, token_embeddings, np.float32(-1e9)).max(axis=1)
    elif strategy is PoolingStrategy.WEIGHTED_MEAN:
        positions = np.arange(1, token_embeddings.shape[1] + 1, dtype=np.float32)[None, :, None]
        weights = mask * positions
        pooled = (token_embeddings * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
    else:
        pooled = (token_embeddings * mask).sum(axis=1) / np.clip(mask.sum(axis=1), 1e-9, None)
    return np.ascontiguousarray(pooled, dtype=np.float32)


def l2_normalize(vectors: VectorArray) -> VectorArray:
    """Scale each row to unit length; all-zero rows stay zero."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    normalized: VectorArray = (vectors / np.clip(norms, 1e-12, None)).astype(np.float32, copy=False)
    return normalized
