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


def __getattr__(name: str) -> object:
    # ABTestingFramework lives in rag_factory.experiments; it is re-exported here (SPEC §2) lazily,
    # because the experiments package itself imports these data models.
    if name == "ABTestingFramework":
        from rag_factory.experiments.framework import ABTestingFramework

        return ABTestingFramework
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ABTestConfig",
    "ABTestingFramework",
    "ABTestResult",
    "CustomModelLoader",
    "EmbeddingModelMetadata",
    "ModelConfig",
    "ModelFormat",
    "ModelRegistry",
    "PoolingStrategy",
]
