"""The interface every loaded model implements, and the batching they share."""

from __future__ import annotations

import abc
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from rag_factory.arrays import VectorArray
from rag_factory.errors import InvalidArgumentError
from rag_factory.models.embedding.pooling import l2_normalize


def validate_texts(texts: Sequence[str]) -> list[str]:
    """Return ``texts`` as a list, raising ``InvalidArgumentError`` for any non-string item."""
    items = list(texts)
    for position, text in enumerate(items):
        if not isinstance(text, str):
            raise InvalidArgumentError(f"texts[{position}] is {type(text).__name__}, expected str")
    return items


@dataclass(frozen=True)
class BackendInfo:
    """What actually serves a model: useful in responses, logs and benchmarks."""

    backend: str  # "sentence_transformers", "huggingface", "pytorch", "onnx"
    precision: str  # "fp32", "fp16" or "int8"
    device: str
    source: str  # path of the weights that were loaded
    details: dict[str, str] = field(default_factory=dict)


class EmbeddingModel(abc.ABC):
    """A loaded model: turns texts into float32 vectors.

    Subclasses implement :meth:`_encode_batch`; this class sorts texts by length so each batch pads
    little, splits them into batches, restores the caller's order and normalises.
    """

    def __init__(
        self,
        *,
        info: BackendInfo,
        embedding_dim: int,
        max_seq_length: int,
        normalize: bool,
        batch_size: int,
        memory_bytes: int,
    ) -> None:
        self.info = info
        self.embedding_dim = embedding_dim
        self.max_seq_length = max_seq_length
        self.normalize = normalize
        self.batch_size = batch_size
        # Estimated resident size; the loader's cache budgets on it.
        self.memory_bytes = memory_bytes

    @abc.abstractmethod
    def _encode_batch(self, texts: list[str]) -> VectorArray:
        """Embed one batch without normalisation: ``(len(texts), embedding_dim)``."""

    def encode(self, texts: Sequence[str], batch_size: int | None = None) -> VectorArray:
        """Embed ``texts`` in batches.

        Args:
            texts: Strings to embed; may be empty.
            batch_size: Texts per forward pass; defaults to the configured batch size.

        Returns:
            ``(len(texts), embedding_dim)`` float32 array, L2-normalised if configured.

        Raises:
            InvalidArgumentError: An item is not a string.
        """
        items = validate_texts(texts)
        if not items:
            return np.zeros((0, self.embedding_dim), dtype=np.float32)
        size = batch_size or self.batch_size
        # Longest first: similar lengths share a batch, so little compute is spent on padding.
        order = sorted(range(len(items)), key=lambda i: -len(items[i]))
        out = np.empty((len(items), self.embedding_dim), dtype=np.float32)
        chunks = [order[start : start + size] for start in range(0, len(order), size)]
        for chunk, vectors in zip(chunks, self._encode_batches([[items[i] for i in c] for c in chunks]), strict=True):
            out[chunk] = vectors
        return l2_normalize(out) if self.normalize else out

    def _encode_batches(self, batches: list[list[str]]) -> Iterator[VectorArray]:
        """Embed several batches, in order; backends that can overlap batches override this."""
        for texts in batches:
            yield self._encode_batch(texts)

    def close(self) -> None:  # noqa: B027 - optional hook, most backends hold nothing to release
        """Release resources; the cache calls this on eviction."""

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(backend={self.info.backend!r}, precision={self.info.precision!r}, "
            f"dim={self.embedding_dim}, max_seq_length={self.max_seq_length})"
        )
