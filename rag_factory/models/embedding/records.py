"""Records the model registry returns: a registered model, an alias event and a side-by-side comparison."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import PydanticSerializationError

from rag_factory.errors import InvalidArgumentError, InvalidConfigError, describe_choices
from rag_factory.models.embedding.models import EmbeddingModelMetadata, ModelConfig, ModelFormat

# Metadata fields that hold metrics; update_metrics writes these into the metadata itself.
METADATA_METRIC_FIELDS: tuple[str, ...] = (
    "avg_inference_time_ms",
    "model_size_mb",
    "retrieval_accuracy",
    "mrr_score",
    "ndcg_at_10",
)

AliasAction = Literal["set", "rollback", "remove"]


def utcnow() -> datetime:
    """The current time in UTC (one clock for every registry timestamp)."""
    return datetime.now(UTC)


class ModelRecord(BaseModel):
    """One registered model version, with everything the registry keeps about it."""

    model_config = ConfigDict(protected_namespaces=())

    metadata: EmbeddingModelMetadata = Field(description="The model's public metadata.")
    metrics: dict[str, float] = Field(
        default_factory=dict, description="Free-form metrics beyond the metadata's metric fields."
    )
    load_config: dict[str, Any] = Field(
        default_factory=dict,
        description="Loading options (ModelConfig fields such as pooling_strategy, quantization).",
    )
    artifact_sha256: str | None = Field(
        default=None, description="Digest of the content-addressed artifact, if one was stored."
    )
    deprecated: bool = Field(default=False, description="Deprecated versions are refused for new traffic.")
    deprecation_reason: str = Field(default="", description="Why the version was deprecated.")
    registered_at: datetime = Field(default_factory=utcnow, description="When it was registered (UTC).")

    @property
    def model_id(self) -> str:
        """The unique id of this model version."""
        return self.metadata.model_id

    @property
    def ref(self) -> str:
        """The human reference ``name@version``."""
        return f"{self.metadata.model_name}@{self.metadata.version}"

    def all_metrics(self) -> dict[str, float]:
        """Metadata metric fields that are set, merged with the free-form metrics."""
        merged = {
            name: float(value) for name in METADATA_METRIC_FIELDS if (value := getattr(self.metadata, name)) is not None
        }
        merged.update(self.metrics)
        return merged

    def with_metrics(self, metrics: Mapping[str, float]) -> ModelRecord:
        """A copy with ``metrics`` applied: metadata metric fields go into the metadata, the rest
        into the free-form map (nothing is dropped).

        Raises:
            InvalidArgumentError: A name is empty, or a value is not finite or not allowed (a
                negative size, say).
        """
        check_metrics(metrics)
        fields = {k: float(v) for k, v in metrics.items() if k in METADATA_METRIC_FIELDS}
        free = {k: float(v) for k, v in metrics.items() if k not in METADATA_METRIC_FIELDS}
        try:
            metadata = EmbeddingModelMetadata.model_validate({**self.metadata.model_dump(), **fields})
        except ValidationError as exc:
            raise InvalidArgumentError(f"invalid metric value: {exc.errors()[0]['msg']}") from exc
        return self.model_copy(update={"metadata": metadata, "metrics": {**self.metrics, **free}})


class AliasEvent(BaseModel):
    """One change of an alias, kept forever as the alias's history."""

    model_config = ConfigDict(protected_namespaces=())

    sequence: int = Field(description="Monotonic event number; orders events of all aliases.")
    model_name: str = Field(description="Model name the alias belongs to.")
    alias: str = Field(description="Alias name such as 'production'.")
    action: AliasAction = Field(description="'set', 'rollback' or 'remove'.")
    model_id: str | None = Field(description="Target after the event (None after 'remove').")
    previous_model_id: str | None = Field(description="Target before the event (None if unset).")
    created_at: datetime = Field(description="When the event happened (UTC).")


class MetricDelta(BaseModel):
    """One metric of two models side by side."""

    a: float | None = Field(description="Value for model A, if it has the metric.")
    b: float | None = Field(description="Value for model B, if it has the metric.")
    delta: float | None = Field(description="b - a when both are present.")


class ModelComparison(BaseModel):
    """Two registered models side by side: the metadata that differs and every metric."""

    model_config = ConfigDict(protected_namespaces=())

    model_a: str = Field(description="Model id of A.")
    model_b: str = Field(description="Model id of B.")
    metadata_diff: dict[str, tuple[Any, Any]] = Field(
        description="Metadata fields (other than metrics) whose values differ: field -> (a, b)."
    )
    metrics: dict[str, MetricDelta] = Field(description="Every metric either model has.")


def check_metrics(metrics: Mapping[str, float]) -> None:
    """Check that ``metrics`` maps non-empty names to finite numbers.

    Raises:
        InvalidArgumentError: It does not.
    """
    if not isinstance(metrics, Mapping):
        raise InvalidArgumentError(f"metrics must be a mapping of name to number, got {type(metrics).__name__}")
    for key, value in metrics.items():
        if not isinstance(key, str) or not key.strip():
            raise InvalidArgumentError(f"metric name {key!r} must be a non-empty string")
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise InvalidArgumentError(f"metric {key!r} must be a finite number, got {value!r}")


def check_load_config(config: Mapping[str, Any], fmt: ModelFormat) -> dict[str, Any]:
    """Validate loading options against ``ModelConfig``; return them JSON-ready, as given.

    Raises:
        InvalidConfigError: An unknown or reserved option, a bad value, or a value JSON cannot hold.
    """
    allowed = set(ModelConfig.model_fields) - {"model_path", "model_format"}
    unknown = set(config) - allowed
    if unknown:
        raise InvalidConfigError(
            f"unknown load_config option(s) {', '.join(sorted(unknown))}; valid: {describe_choices(allowed, 20)}"
        )
    try:
        checked = ModelConfig(model_path="-", model_format=fmt, **config).model_dump(mode="json")
    except ValidationError as exc:
        raise InvalidConfigError(f"invalid load_config: {exc.errors()[0]['msg']}") from exc
    except PydanticSerializationError as exc:
        raise InvalidConfigError(f"load_config must be JSON-serialisable: {exc}") from exc
    return {key: checked[key] for key in config}  # keep only what the caller set
