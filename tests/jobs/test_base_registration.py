"""Registering a base model: once for jobs that start together, and never into someone else's family.

Issue 18, item 15: three concurrent jobs each found the base unregistered and each registered it; two
failed with DUPLICATE_VERSION. Each job's worker registers the base in its own process, with its own
registry connection, as the threads here do (two of them: each registration copies the whole model).

Issue 19 review: when the names a base could take were taken, it became the next minor version of an
unrelated family: `serve --model ./other/model` (or `train --base DIR`) registered model@1.1.0 next to
someone's model@1.0.0, and clients asking for `model` got another vector space.
"""

from __future__ import annotations

import shutil
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from rag_factory.errors import AlreadyExistsError
from rag_factory.jobs.fine_tune_job import register_base
from rag_factory.models.embedding import ModelRegistry
from rag_factory.models.embedding.hub import DEFAULT_BASE_MODEL
from rag_factory.models.embedding.models import EmbeddingModelMetadata
from rag_factory.models.training.registration import artifact_digest, ensure_base_registered

pytestmark = pytest.mark.slow  # loads the bundled model to read its dimension


def test_concurrent_jobs_share_one_registration_of_the_base(tmp_path: Path) -> None:
    barrier = threading.Barrier(2)

    def one_job() -> str:
        with ModelRegistry(tmp_path / "registry") as registry:
            barrier.wait()  # both look the base up before any registers it
            return register_base(registry, DEFAULT_BASE_MODEL).model_id

    with ThreadPoolExecutor(2) as pool:
        ids = list(pool.map(lambda _: one_job(), range(2)))

    assert ids == ["minilm-1.0.0"] * 2
    with ModelRegistry(tmp_path / "registry") as registry:
        assert [r.model_id for r in registry.list_models()] == ["minilm-1.0.0"]


@pytest.fixture(scope="module")
def other_model_dir(minilm_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A user's sentence-transformers directory called ``model`` (the bundled model's files, copied)."""
    target = tmp_path_factory.mktemp("other") / "model"
    shutil.copytree(minilm_dir, target)
    return target


def _register_unrelated(registry: ModelRegistry, tmp_path: Path, model_id: str, name: str) -> None:
    # Another team's model: its files are never loaded here, so a small directory stands for them.
    files = tmp_path / f"{model_id}-files"
    files.mkdir()
    (files / "model.onnx").write_bytes(b"another team's ONNX graph")
    metadata = EmbeddingModelMetadata(
        model_id=model_id, model_name=name, version="1.0.0", format="onnx", embedding_dim=768, max_seq_length=512
    )
    registry.register_model(metadata, artifact_path=files)


def test_a_base_never_becomes_a_version_of_an_unrelated_family_of_its_name(
    tmp_path: Path, other_model_dir: Path
) -> None:
    with ModelRegistry(tmp_path / "registry") as registry:
        _register_unrelated(registry, tmp_path, "model-1.0.0", "model")

        record = ensure_base_registered(registry, str(other_model_dir), created_by="rag-factory serve")
        again = ensure_base_registered(registry, str(other_model_dir))  # a restart, or `train --base DIR`

        # A name of its own, from its files' digest, so the next start finds the same registration.
        assert record.ref == f"model-{artifact_digest(other_model_dir)[:8]}@1.0.0"
        assert again.model_id == record.model_id
        assert [r.ref for r in registry.versions("model")] == ["model@1.0.0"]
        assert registry.resolve("model").model_id == "model-1.0.0"  # clients asking for "model" get theirs


def test_a_base_whose_every_name_is_taken_is_refused(tmp_path: Path, other_model_dir: Path) -> None:
    digested = f"model-{artifact_digest(other_model_dir)[:8]}"
    with ModelRegistry(tmp_path / "registry") as registry:
        _register_unrelated(registry, tmp_path, "model-1.0.0", "model")
        _register_unrelated(registry, tmp_path, f"{digested}-1.0.0", digested)

        with pytest.raises(AlreadyExistsError, match=f"the names 'model' and '{digested}' are taken"):
            ensure_base_registered(registry, str(other_model_dir))

        assert len(registry.list_records()) == 2
