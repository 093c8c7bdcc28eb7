"""Shared base of the torch backends that tokenize themselves and pool token embeddings in numpy."""

from __future__ import annotations

import abc
from pathlib import Path
from typing import Any

import numpy as np

from rag_factory.arrays import VectorArray
from rag_factory.models.embedding.backends.base import BackendInfo, EmbeddingModel
from rag_factory.models.embedding.backends.torch_utils import module_bytes, place_and_quantize
from rag_factory.models.embedding.model_files import declared_pooling, model_max_seq_length
from rag_factory.models.embedding.models import ModelConfig, PoolingStrategy
from rag_factory.models.embedding.pooling import pool
from rag_factory.models.embedding.tokenization import load_tokenizer, tokenize


class TokenEmbeddingModel(EmbeddingModel):
    """Tokenizer + torch module whose output is token embeddings (or already-pooled vectors)."""

    backend_name = "torch"

    def __init__(self, *, tokenizer_dir: Path, module: Any, config: ModelConfig, source: Path) -> None:
        import torch

        declared_limit = model_max_seq_length(tokenizer_dir)
        max_seq_length = min(config.max_seq_length or declared_limit, declared_limit)
        self._tokenizer = load_tokenizer(tokenizer_dir, max_seq_length)
        explicit = "pooling_strategy" in config.model_fields_set
        self._pooling = config.pooling_strategy if explicit else declared_pooling(tokenizer_dir) or PoolingStrategy.MEAN
        self._module, precision = place_and_quantize(module, config)
        self._device = "cpu" if precision == "int8" else config.device
        self._torch = torch
        self._input_names = self._accepted_inputs()
        dim = int(self._encode_batch(["dimension probe"]).shape[1])
        super().__init__(
            info=BackendInfo(self.backend_name, precision, self._device, str(source), {"pooling": self._pooling.value}),
            embedding_dim=dim,
            max_seq_length=max_seq_length,
            normalize=config.normalize_embeddings,
            batch_size=config.batch_size,
            memory_bytes=module_bytes(self._module),
        )

    def _accepted_inputs(self) -> set[str]:
        return {"input_ids", "attention_mask", "token_type_ids"}

    @abc.abstractmethod
    def _forward(self, inputs: dict[str, Any]) -> Any:
        """Run the module; return token embeddings ``(batch, tokens, dim)`` or ``(batch, dim)``."""

    def _encode_batch(self, texts: list[str]) -> VectorArray:
        features = tokenize(self._tokenizer, texts)
        tensors = {
            name: self._torch.from_numpy(value).to(self._device)
            for name, value in features.items()
            if name in self._input_names
        }
        with self._torch.inference_mode():
            output = self._forward(tensors)
        array = output.float().cpu().numpy()
        if array.ndim == 2:
            return np.asarray(array, dtype=np.float32)
        return pool(array, features["attention_mask"], self._pooling)
