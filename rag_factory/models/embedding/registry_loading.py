"""Load a registered model from its record: the loading config, and the artifact verified on a real load.

These functions take a resolved record and whatever holds the artifact store (a ``ModelRegistry``);
``ModelRegistry.load_model`` resolves the reference, refusing deprecated versions, and calls them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from rag_factory.errors import FailedPreconditionError
from rag_factory.models.embedding.artifacts import ArtifactStore
from rag_factory.models.embedding.backends.base import EmbeddingModel
from rag_factory.models.embedding.loader import CustomModelLoader, build_model_config
from rag_factory.models.embedding.models import ModelConfig
from rag_factory.models.embedding.records import ModelRecord


class ArtifactSource(Protocol):
    """What holds the stored artifacts of records, such as a ``ModelRegistry``."""

    @property
    def artifacts(self) -> ArtifactStore:
        """The content-addressed store the records' ``artifact_sha256`` point into."""
        ...


def model_config_for(
    source: ArtifactSource, record: ModelRecord, overrides: Mapping[str, Any] | None = None
) -> ModelConfig:
    """The ``ModelConfig`` that loads ``record`` from its stored artifact (not yet verified).

    Args:
        source: Holds the artifact (a ``ModelRegistry``).
        record: The registered model.
        overrides: ``ModelConfig`` fields that replace the registered loading options.

    Raises:
        FailedPreconditionError: The record has no stored artifact.
    """
    if record.artifact_sha256 is None:
        raise FailedPreconditionError(
            f"model {record.model_id!r} ({record.ref}) has no stored artifact to load; "
            "register it with an artifact_path",
            model_id=record.model_id,
        )
    return build_model_config(
        {
            **record.load_config,
            **(overrides or {}),
            "model_path": str(source.artifacts.content_path(record.artifact_sha256)),
            "model_format": record.metadata.format,
        }
    )


def load_record(
    source: ArtifactSource,
    record: ModelRecord,
    loader: CustomModelLoader,
    *,
    overrides: Mapping[str, Any] | None = None,
) -> EmbeddingModel:
    """Load the model of ``record`` from its stored artifact.

    The artifact's sha256 is checked on every real load; a model already in the loader's cache
    was checked when it was loaded, so a cache hit costs no hashing.

    Args:
        source: Holds the artifact (a ``ModelRegistry``).
        record: The registered model, already resolved (deprecation is the resolver's business).
        loader: Loader (and cache) to use.
        overrides: ``ModelConfig`` fields that replace the registered loading options.

    Raises:
        FailedPreconditionError: The record has no stored artifact.
        ArtifactIntegrityError: The stored artifact does not match its sha256.
    """
    config = model_config_for(source, record, overrides)
    cached = loader.get_cached(config)
    if cached is not None:
        return cached
    source.artifacts.verify(str(record.artifact_sha256))  # not None: model_config_for checked it
    return loader.load_model(config)
