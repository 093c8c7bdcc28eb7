"""sentence-transformers backend: the model's own saved pipeline (transformer, pooling, normalise)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rag_factory.arrays import VectorArray
from rag_factory.errors import ModelLoadError
from rag_factory.models.embedding.backends.base import BackendInfo, EmbeddingModel, validate_texts
from rag_factory.models.embedding.backends.torch_utils import module_bytes, place_and_quantize
from rag_factory.models.embedding.models import ModelConfig


class SentenceTransformerModel(EmbeddingModel):
    """Wraps ``SentenceTransformer``; pooling comes from the model's saved Pooling module."""

    def __init__(self, path: Path, config: ModelConfig) -> None:
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:  # pragma: no cover - a core dependency
            raise ModelLoadError("sentence-transformers is not installed: pip install sentence-transformers") from exc
        try:
            model = SentenceTransformer(str(path), device="cpu", local_files_only=True)
        except Exception as exc:
            raise ModelLoadError(f"could not load sentence-transformers model {str(path)!r}: {exc}") from exc
        if config.max_seq_length:
            model.max_seq_length = min(config.max_seq_length, int(model.max_seq_length or config.max_seq_length))
        self.model, precision = place_and_quantize(model, config)
        dim = self.model.get_embedding_dimension()
        super().__init__(
            info=BackendInfo("sentence_transformers", precision, config.device, str(path)),
            embedding_dim=int(dim),
            max_seq_length=int(self.model.max_seq_length),
            normalize=config.normalize_embeddings,
            batch_size=config.batch_size,
            memory_bytes=module_bytes(self.model),
        )

    def encode(self, texts: Sequence[str], batch_size: int | None = None) -> VectorArray:
        # sentence-transformers sorts by length and batches by itself, so we hand it all texts.
        items = validate_texts(texts)
        if not items:
            return np.zeros((0, self.embedding_dim), dtype=np.float32)
        vectors = self.model.encode(
            items,
            batch_size=batch_size or self.batch_size,
            convert_to_numpy=True,
            normalize_embeddings=self.normalize,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)

    def _encode_batch(self, texts: list[str]) -> VectorArray:
        return self.encode(texts)
