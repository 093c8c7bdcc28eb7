"""Embedding models: data models, the model registry and the model loader."""

from __future__ import annotations

from rag_factory.models.embedding.loader import CustomModelLoader
from rag_factory.models.embedding.models import (
    ABTestConfig,
    ABTestResult,
    EmbeddingModelMetadata,
    ModelConfig,
    ModelFormat,
    PoolingStrategy,
)
from rag_factory.models.embedding.registry import ModelRegistry

__all__ = [
    "ABTestConfig",
    "ABTestResult",
    "CustomModelLoader",
    "EmbeddingModelMetadata",
    "ModelConfig",
    "ModelFormat",
    "ModelRegistry",
    "PoolingStrategy",
]
