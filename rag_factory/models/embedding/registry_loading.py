"""Load a registered model: resolve the reference, refuse deprecated versions, verify the artifact."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from rag_factory.errors import FailedPreconditionError
from rag_factory.models.embedding.backends.base import EmbeddingModel
from rag_factory.models.embedding.loader import CustomModelLoader, build_model_config
from rag_factory.models.embedding.models import ModelConfig
from rag_factory.models.embedding.records import ModelRecord

if TYPE_CHECKING:
    from rag_factory.models.embedding.registry import ModelRegistry


def model_config_for(
    registry: ModelRegistry, record: ModelRecord, overrides: Mapping[str, Any] | None = None
) -> ModelConfig:
    """The ``ModelConfig`` that loads ``record`` from its stored artifact (not yet verified)."""
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
            "model_path": str(registry.artifacts.content_path(record.artifact_sha256)),
            "model_format": record.metadata.format,
        }
    )


def load_registered_model(
    registry: ModelRegistry,
    ref: str,
    loader: CustomModelLoader,
    *,
    allow_deprecated: bool = False,
    overrides: Mapping[str, Any] | None = None,
) -> tuple[ModelRecord, EmbeddingModel]:
    """Resolve ``ref`` and return its record with the loaded model.

    The artifact's sha256 is checked on every real load; a model already in the loader's cache
    was checked when it was loaded, so a cache hit costs no hashing.

    Args:
        registry: Where the model is registered.
        ref: Model id, ``name@version``, ``name@alias`` or a bare name.
        loader: Loader (and cache) to use.
        allow_deprecated: Load a deprecated version anyway.
        overrides: ``ModelConfig`` fields that replace the registered loading options.

    Raises:
        ModelNotFoundError, AliasNotFoundError: ``ref`` does not resolve.
        ModelDeprecatedError: The version is deprecated and ``allow_deprecated`` is False.
        ArtifactIntegrityError: The stored artifact does not match its sha256.
    """
    record = registry.resolve(ref, allow_deprecated=allow_deprecated)
    config = model_config_for(registry, record, overrides)
    cached = loader.get_cached(config)
    if cached is not None:
        return record, cached
    registry.artifact_path(record.model_id, verify=True)
    return record, loader.load_model(config)
