"""Records the model registry returns (a model, an alias event, a comparison) and checks of what it stores."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import PydanticSerializationError

from rag_factory.errors import InvalidArgumentError, InvalidConfigError, describe_choices, quoted
from rag_factory.models.embedding.model_files import declared_embedding_dim
from rag_factory.models.embedding.models import EmbeddingModelMetadata, ModelConfig, ModelFormat
from rag_factory.models.embedding.names import check_label, check_labels, check_name, check_text
from rag_factory.models.embedding.versions import check_version_bounds

# Metadata fields that hold metrics; update_metrics writes these into the metadata itself.
METADATA_METRIC_FIELDS: tuple[str, ...] = (
    "avg_inference_time_ms",
    "model_size_mb",
    "retrieval_accuracy",
    "mrr_score",
    "ndcg_at_10",
)

AliasAction = Literal["set", "rollback", "remove"]

# Bounds of what a new registration may declare: wider than any embedding model yet, so only mistakes hit them.
MAX_EMBEDDING_DIM = 65_536
MAX_SEQ_LENGTH = 1_048_576
MAX_REASON_CHARS = 1000
# Most metrics one call sets, most one record keeps (besides its metadata fields; evaluations on many
# datasets add a few dozen each), and the longest metric name.
MAX_METRICS_PER_CALL = 1000
MAX_METRICS = 10_000
MAX_METRIC_NAME_CHARS = 200
# Ranking metrics and accuracies, alone or after a prefix ("test_", "scifact/test/"): fractions in [0, 1].
_FRACTION_METRIC = re.compile(
    r"(?:^|[/_])(?:ndcg|mrr|map|recall|precision|accuracy|hit_rate|success)(?:@\d+|_at_\d+)?$|^mrr_score$"
)


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
        if len({**self.metrics, **free}) > MAX_METRICS:
            raise InvalidArgumentError(
                f"model {self.model_id!r} would keep more than {MAX_METRICS} metrics; overwrite existing names instead"
            )
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
    model_id: str | None = Field(
        description="Target after the event (None after 'remove', or a 'rollback' past the first target)."
    )
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
    """Check that ``metrics`` maps short printable names to finite numbers, within range where one is known.

    Ranking metrics and accuracies (``ndcg_at_10``, ``mrr_score``, ``retrieval_accuracy``, and free-form
    names such as ``recall@5``, ``test_ndcg@10`` or ``scifact/test/map@100``) are fractions in [0, 1].

    Raises:
        InvalidArgumentError: It does not.
    """
    if not isinstance(metrics, Mapping):
        raise InvalidArgumentError(f"metrics must be a mapping of name to number, got {type(metrics).__name__}")
    if len(metrics) > MAX_METRICS_PER_CALL:
        raise InvalidArgumentError(f"{len(metrics)} metrics in one call; at most {MAX_METRICS_PER_CALL} are allowed")
    for key, value in metrics.items():
        if not isinstance(key, str) or not key.strip():
            raise InvalidArgumentError(f"metric name {quoted(str(key))} must be a non-empty string")
        check_label("metric name", key, MAX_METRIC_NAME_CHARS)
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise InvalidArgumentError(f"metric {quoted(key)} must be a finite number, got {repr(value)[:40]}")
        if _FRACTION_METRIC.search(key) and not 0.0 <= value <= 1.0:
            raise InvalidArgumentError(f"metric {quoted(key)} is a fraction and must lie in [0, 1], got {value:g}")


def check_load_config(config: Mapping[str, Any], fmt: ModelFormat) -> dict[str, Any]:
    """Validate loading options against ``ModelConfig``; return them JSON-ready, as given.

    Raises:
        InvalidConfigError: An unknown or reserved option, a bad value, or a value JSON cannot hold.
    """
    allowed = set(ModelConfig.model_fields) - {"model_path", "model_format"}
    unknown = sorted(set(config) - allowed)
    if unknown:
        named = ", ".join(quoted(str(name), 40) for name in unknown[:5]) + (" …" if len(unknown) > 5 else "")
        raise InvalidConfigError(f"unknown load_config option(s) {named}; valid: {describe_choices(allowed, 20)}")
    try:
        checked = ModelConfig(model_path="-", model_format=fmt, **config).model_dump(mode="json")
    except ValidationError as exc:
        raise InvalidConfigError(f"invalid load_config: {exc.errors()[0]['msg']}") from exc
    except PydanticSerializationError as exc:
        raise InvalidConfigError(f"load_config must be JSON-serialisable: {str(exc)[:200]}") from exc
    return {key: checked[key] for key in config}  # keep only what the caller set


def check_new_metadata(metadata: EmbeddingModelMetadata) -> None:
    """Check what a new registration stores beyond pydantic's field types (records stored before stay readable).

    Ids and names are in the character set of ``names``; free-text fields are printable and bounded;
    the version's numbers fit 32 bits; ``embedding_dim`` and ``max_seq_length`` are plausible.

    Raises:
        InvalidArgumentError: A field breaks one of these rules (the message names it).
    """
    check_name("model_id", metadata.model_id)
    check_name("model_name", metadata.model_name)
    check_version_bounds(metadata.version)
    for field in ("base_model", "fine_tuned_on", "domain", "created_by"):
        value = getattr(metadata, field)
        if value is not None:
            check_label(field, value)
    if metadata.description is not None:
        check_text("description", metadata.description)
    check_labels("tags", metadata.tags)
    if metadata.embedding_dim > MAX_EMBEDDING_DIM:
        raise InvalidArgumentError(f"embedding_dim {metadata.embedding_dim} is above the limit of {MAX_EMBEDDING_DIM}")
    if metadata.max_seq_length > MAX_SEQ_LENGTH:
        raise InvalidArgumentError(f"max_seq_length {metadata.max_seq_length} is above the limit of {MAX_SEQ_LENGTH}")


def check_declared_dimension(metadata: EmbeddingModelMetadata, artifact: Path) -> None:
    """Refuse an ``embedding_dim`` other than the one the artifact's config files declare.

    Only config files are read (see ``declared_embedding_dim``), so it costs no model load; an artifact
    whose files do not say (a custom PyTorch module, a damaged directory) is not checked.

    Raises:
        InvalidArgumentError: The files declare another vector length.
    """
    declared = declared_embedding_dim(artifact, metadata.format.value)
    if declared is not None and declared != metadata.embedding_dim:
        raise InvalidArgumentError(
            f"embedding_dim is {metadata.embedding_dim}, but the {metadata.format.value} model's files declare "
            f"{declared}-dimensional vectors; register it with embedding_dim={declared}",
            model_id=metadata.model_id,
        )
