"""Loading models through the registry: references, deprecation and artifact verification on load."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rag_factory.errors import ArtifactIntegrityError, FailedPreconditionError, ModelDeprecatedError
from rag_factory.models.embedding import CustomModelLoader, EmbeddingModelMetadata, ModelRegistry

pytestmark = pytest.mark.slow


def _metadata(model_id: str, version: str, **extra: object) -> EmbeddingModelMetadata:
    return EmbeddingModelMetadata(
        model_id=model_id,
        model_name="minilm",
        version=version,
        format="huggingface",
        embedding_dim=384,
        max_seq_length=256,
        **extra,
    )


@pytest.fixture
def registry(tmp_path: Path, minilm_dir: Path) -> ModelRegistry:
    registry = ModelRegistry(tmp_path / "registry")
    registry.register_model(_metadata("minilm-1", "1.0.0"), artifact_path=minilm_dir)
    registry.register_model(
        _metadata("minilm-2", "1.1.0", base_model="minilm-1"),
        artifact_path=minilm_dir,
        load_config={"pooling_strategy": "cls"},
    )
    registry.set_alias("minilm", "production", "minilm-1")
    return registry


def test_alias_reference_loads_the_version_it_points_to(registry: ModelRegistry) -> None:
    loader = CustomModelLoader()
    record, model = registry.load_model("minilm@production", loader)
    assert record.model_id == "minilm-1"
    assert model.encode(["a claim"]).shape == (1, 384)


def test_registered_load_config_is_applied(registry: ModelRegistry) -> None:
    loader = CustomModelLoader()
    _, mean_model = registry.load_model("minilm@1.0.0", loader)
    _, cls_model = registry.load_model("minilm@1.1.0", loader)
    assert cls_model.info.details["pooling"] == "cls" and mean_model.info.details["pooling"] == "mean"
    texts = ["Vitamin D deficiency and fractures"]
    assert not np.allclose(mean_model.encode(texts), cls_model.encode(texts))


def test_a_second_load_is_served_from_the_cache(registry: ModelRegistry) -> None:
    loader = CustomModelLoader()
    _, first = registry.load_model("minilm-1", loader)
    _, again = registry.load_model("minilm-1", loader)
    assert again is first


def test_deprecated_versions_are_refused_unless_forced(registry: ModelRegistry) -> None:
    registry.deprecate("minilm-2", reason="regressed on legal queries")
    with pytest.raises(ModelDeprecatedError, match="regressed on legal queries"):
        registry.load_model("minilm@1.1.0", CustomModelLoader())
    record, _ = registry.load_model("minilm@1.1.0", CustomModelLoader(), allow_deprecated=True)
    assert record.deprecated


def test_a_corrupted_artifact_is_detected_on_load(registry: ModelRegistry) -> None:
    artifact = registry.artifact_path("minilm-1", verify=False)
    assert artifact is not None
    weights = next(artifact.rglob("model.safetensors"))
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ArtifactIntegrityError, match="model.safetensors"):
        registry.load_model("minilm-1", CustomModelLoader())
    assert registry.get_model("minilm-1") is not None  # the record itself is kept


def test_a_model_registered_without_artifact_cannot_be_loaded(registry: ModelRegistry) -> None:
    registry.register_model(_metadata("minilm-3", "2.0.0"))
    with pytest.raises(FailedPreconditionError, match="no stored artifact"):
        registry.load_model("minilm-3", CustomModelLoader())
