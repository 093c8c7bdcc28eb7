"""The public data models: seed field names, defaults and validation."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from rag_factory.models.embedding.models import (
    ABTestConfig,
    ABTestResult,
    EmbeddingModelMetadata,
    ModelConfig,
    ModelFormat,
    PoolingStrategy,
)


def _metadata(**overrides: object) -> EmbeddingModelMetadata:
    fields: dict[str, object] = {
        "model_id": "minilm-base",
        "model_name": "minilm",
        "version": "1.0.0",
        "format": "sentence_transformers",
        "embedding_dim": 384,
        "max_seq_length": 256,
    }
    return EmbeddingModelMetadata(**{**fields, **overrides})


def test_enums_have_the_seed_values() -> None:
    assert {f.value for f in ModelFormat} == {"huggingface", "sentence_transformers", "pytorch", "onnx"}
    assert {p.value for p in PoolingStrategy} == {"mean", "max", "cls", "weighted_mean"}


def test_metadata_defaults_created_at_to_now_and_tags_to_empty() -> None:
    metadata = _metadata()
    assert metadata.tags == [] and metadata.base_model is None
    assert abs((datetime.now(UTC) - metadata.created_at).total_seconds()) < 5


@pytest.mark.parametrize(
    "overrides",
    [
        {"version": "1.0"},
        {"version": "v1.0.0"},
        {"embedding_dim": 0},
        {"max_seq_length": -1},
        {"model_id": "a@b"},
        {"format": "tensorflow"},
        {"ndcg_at_10": float("nan")},
    ],
    ids=[
        "short-version",
        "v-prefix",
        "zero-dim",
        "negative-length",
        "at-sign",
        "unknown-format",
        "nan-metric",
    ],
)
def test_metadata_rejects_invalid_fields(overrides: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        _metadata(**overrides)


def test_prerelease_and_build_versions_are_valid_semver() -> None:
    assert _metadata(version="2.0.0-rc.1+build.5").version == "2.0.0-rc.1+build.5"


def test_model_config_defaults_follow_the_spec() -> None:
    config = ModelConfig(model_path="x", model_format="onnx")
    assert (config.pooling_strategy, config.normalize_embeddings, config.device, config.batch_size) == (
        PoolingStrategy.MEAN,
        True,
        "cpu",
        32,
    )
    assert (config.use_fp16, config.use_onnx, config.additional_config) == (False, False, {})


@pytest.mark.parametrize("device", ["gpu", "cuda:x", "tpu"])
def test_model_config_rejects_unknown_devices(device: str) -> None:
    with pytest.raises(ValidationError, match="device"):
        ModelConfig(model_path="x", model_format="onnx", device=device)


def test_ab_config_defaults_and_bounds() -> None:
    config = ABTestConfig(test_name="t", model_a_id="a", model_b_id="b")
    assert config.metrics_to_track == ["latency", "accuracy", "recall@5"]
    assert config.statistical_threshold == 0.05
    for split in (-0.1, 1.5):
        with pytest.raises(ValidationError, match="traffic_split"):
            ABTestConfig(test_name="t", model_a_id="a", model_b_id="b", traffic_split=split)
    with pytest.raises(ValidationError, match="different models"):
        ABTestConfig(test_name="t", model_a_id="a", model_b_id="a")


def test_ab_result_accepts_only_the_three_winner_values() -> None:
    fields = {
        "test_name": "t",
        "model_a_id": "a",
        "model_b_id": "b",
        "model_a_samples": 1,
        "model_b_samples": 1,
        "recommendation": "",
        "start_time": datetime.now(UTC),
    }
    assert ABTestResult(**fields, winner="model_b").winner == "model_b"
    with pytest.raises(ValidationError):
        ABTestResult(**fields, winner="model_c")
