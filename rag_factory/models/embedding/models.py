"""Data models of the public API: model metadata, load configuration and A/B test records."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

import semver
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from rag_factory.errors import quoted


class ModelFormat(StrEnum):
    """How a model is stored on disk, and so which backend loads it."""

    HUGGINGFACE = "huggingface"
    SENTENCE_TRANSFORMERS = "sentence_transformers"
    PYTORCH = "pytorch"
    ONNX = "onnx"


class PoolingStrategy(StrEnum):
    """How token embeddings become one sentence embedding."""

    MEAN = "mean"
    MAX = "max"
    CLS = "cls"
    # Position-weighted mean: token i (1-based) gets weight i, as in SGPT.
    WEIGHTED_MEAN = "weighted_mean"


Quantization = Literal["none", "int8"]


def _utcnow() -> datetime:
    return datetime.now(UTC)


def validate_semver(value: str) -> str:
    """Return ``value`` if it is a semantic version such as ``1.2.0``; raise ``ValueError`` otherwise."""
    if not semver.Version.is_valid(value):
        raise ValueError(f"version {quoted(value)} is not a semantic version such as '1.2.0'")
    return value


class EmbeddingModelMetadata(BaseModel):
    """What the registry knows about one version of an embedding model."""

    model_config = ConfigDict(protected_namespaces=(), use_enum_values=False, validate_assignment=True)

    model_id: str = Field(min_length=1, max_length=200, description="Unique id of this model version.")
    model_name: str = Field(min_length=1, max_length=200, description="Family name shared by all versions of a model.")
    version: str = Field(description="Semantic version of this model within its name, e.g. '1.2.0'.")
    format: ModelFormat = Field(description="Storage format, which decides the loading backend.")
    embedding_dim: int = Field(gt=0, description="Length of the vectors the model produces.")
    max_seq_length: int = Field(gt=0, description="Token limit; longer inputs are truncated.")
    base_model: str | None = Field(default=None, description="Model id (or hub id) this was derived from.")
    fine_tuned_on: str | None = Field(default=None, description="Dataset the model was fine-tuned on.")
    domain: str | None = Field(default=None, description="Domain such as 'medical', 'legal', 'scientific'.")
    avg_inference_time_ms: float | None = Field(default=None, ge=0, description="Mean latency per batch.")
    model_size_mb: float | None = Field(default=None, ge=0, description="Size of the artifact on disk.")
    retrieval_accuracy: float | None = Field(default=None, description="Top-1 retrieval accuracy.")
    mrr_score: float | None = Field(default=None, description="Mean reciprocal rank on the eval set.")
    ndcg_at_10: float | None = Field(default=None, description="nDCG@10 on the eval set.")
    description: str | None = Field(default=None, description="Free-text description.")
    created_by: str | None = Field(default=None, description="Person or job that created the model.")
    created_at: datetime = Field(default_factory=_utcnow, description="Creation time (UTC).")
    tags: list[str] = Field(default_factory=list, description="Labels used to filter models.")

    @field_validator("version")
    @classmethod
    def _check_version(cls, value: str) -> str:
        return validate_semver(value)

    @field_validator("model_id", "model_name")
    @classmethod
    def _check_identifier(cls, value: str) -> str:
        # '@' separates a name from a version or alias in model references ("legal@2.1.0").
        if "@" in value or value != value.strip():
            raise ValueError(f"{quoted(value)} must not contain '@' or surrounding whitespace")
        return value

    @field_validator("avg_inference_time_ms", "model_size_mb", "retrieval_accuracy", "mrr_score", "ndcg_at_10")
    @classmethod
    def _check_finite(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError("metric values must be finite numbers")
        return value


class ModelConfig(BaseModel):
    """How to load and run one model: the key of the loaded-model cache."""

    model_config = ConfigDict(protected_namespaces=(), frozen=True)

    model_path: str = Field(min_length=1, description="Directory, file, or well-known hub id.")
    model_format: ModelFormat = Field(description="Storage format of model_path.")
    pooling_strategy: PoolingStrategy = Field(
        default=PoolingStrategy.MEAN, description="Pooling for backends that pool themselves."
    )
    normalize_embeddings: bool = Field(default=True, description="L2-normalise output vectors.")
    use_fp16: bool = Field(default=False, description="Half precision; applied on CUDA devices only.")
    use_onnx: bool = Field(default=False, description="Serve through ONNX Runtime (exported if needed).")
    device: str = Field(default="cpu", description="'cpu', 'cuda' or 'cuda:N'.")
    batch_size: int = Field(default=32, gt=0, le=4096, description="Texts per forward pass.")
    quantization: Quantization = Field(
        default="none",
        description="'int8': the static int8 ONNX graph (OpenVINO on CPU); torch dynamic int8 for custom PyTorch.",
    )
    max_seq_length: int | None = Field(
        default=None, gt=0, description="Override the model's token limit (never above it)."
    )
    trust_remote_code: bool = Field(
        default=False,
        description="Allow unpickling model files (arbitrary code!). Only for files you trust.",
    )
    additional_config: dict[str, Any] = Field(
        default_factory=dict, description="Backend-specific options, e.g. module_class for pytorch."
    )

    @field_validator("device")
    @classmethod
    def _check_device(cls, value: str) -> str:
        if value != "cpu" and value != "cuda" and not (value.startswith("cuda:") and value[5:].isdigit()):
            raise ValueError(f"device {quoted(value)} is not one of 'cpu', 'cuda', 'cuda:N'")
        return value


class ABTestConfig(BaseModel):
    """Definition of an A/B test between a control model (A) and a candidate (B)."""

    model_config = ConfigDict(protected_namespaces=(), validate_assignment=True)

    test_name: str = Field(min_length=1, max_length=200, description="Unique name of the test.")
    model_a_id: str = Field(min_length=1, description="Control model id.")
    model_b_id: str = Field(min_length=1, description="Candidate model id.")
    traffic_split: float = Field(default=0.5, ge=0.0, le=1.0, description="Fraction of traffic sent to B.")
    duration_days: int = Field(default=7, gt=0, description="Planned duration.")
    minimum_samples: int = Field(default=100, gt=0, description="Samples per arm before any decision.")
    metrics_to_track: list[str] = Field(
        default_factory=lambda: ["latency", "accuracy", "recall@5"], description="Metric names."
    )
    statistical_threshold: float = Field(
        default=0.05, gt=0.0, lt=1.0, description="Significance level (family-wise, after correction)."
    )

    @model_validator(mode="after")
    def _check_models_differ(self) -> ABTestConfig:
        if self.model_a_id == self.model_b_id:
            raise ValueError("model_a_id and model_b_id must be different models")
        return self


class MetricComparison(BaseModel):
    """One metric's value in each arm."""

    model_a: float = Field(description="Mean in arm A.")
    model_b: float = Field(description="Mean in arm B.")
    improvement: float = Field(description="Relative improvement of B over A, signed so that positive is better.")


Winner = Literal["model_a", "model_b", "no_difference"]


class ABTestResult(BaseModel):
    """Outcome of analysing an A/B test."""

    model_config = ConfigDict(protected_namespaces=())

    test_name: str = Field(description="Name of the analysed test.")
    model_a_id: str = Field(description="Control model id.")
    model_b_id: str = Field(description="Candidate model id.")
    model_a_samples: int = Field(ge=0, description="Samples recorded for A.")
    model_b_samples: int = Field(ge=0, description="Samples recorded for B.")
    metrics: dict[str, MetricComparison] = Field(default_factory=dict, description="Per-metric values.")
    p_values: dict[str, float] = Field(default_factory=dict, description="Per-metric p-values.")
    confidence_intervals: dict[str, tuple[float, float]] = Field(
        default_factory=dict, description="Per-metric CI of the difference B - A."
    )
    winner: Winner = Field(description="'model_a', 'model_b' or 'no_difference'.")
    recommendation: str = Field(description="Human-readable advice.")
    start_time: datetime = Field(description="When the test started.")
    end_time: datetime | None = Field(default=None, description="When the analysis was made.")
