"""Shared fixtures: the real bundled model loaded once per session, a real ONNX export, and a real sidecar
on 127.0.0.1:<free port> serving a real registry of those exports (used by the sidecar and plugin tests)."""

from __future__ import annotations

import os
import tempfile

# Process-edge settings, as the CLI applies them: model hubs are unreachable here.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from collections.abc import Iterator, Mapping  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import grpc  # noqa: E402
import pytest  # noqa: E402

from rag_factory.data import bundled_dataset  # noqa: E402
from rag_factory.data.beir import BeirDataset, load_beir  # noqa: E402
from rag_factory.models.embedding import CustomModelLoader, EmbeddingModelMetadata, ModelRegistry  # noqa: E402
from sidecar.server import SidecarServices, build_server, build_services  # noqa: E402
from sidecar.settings import SidecarSettings  # noqa: E402

MINILM_ID = "sentence-transformers/all-MiniLM-L6-v2"


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    """Directory of the bundled all-MiniLM-L6-v2 (sentence-transformers layout)."""
    from rag_factory.models.embedding.hub import resolve_model_path

    return resolve_model_path(MINILM_ID)


@pytest.fixture(scope="session")
def scifact_mini() -> BeirDataset:
    """The SciFact subset bundled with the package."""
    return load_beir(bundled_dataset("scifact_mini"))


@pytest.fixture(scope="session")
def sample_texts(scifact_mini: BeirDataset) -> list[str]:
    """A mix of short queries and long documents (longer than 256 tokens, so truncation matters)."""
    queries = list(scifact_mini.queries.values())[:24]
    docs = [d.as_text() for d in list(scifact_mini.corpus.values())[:24]]
    return queries + docs + ["", "x", "a " * 2000]


@pytest.fixture(scope="session")
def model_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("model-cache")


@pytest.fixture(scope="session")
def onnx_export_dir(minilm_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real ONNX export (fp32 + int8) of the bundled model, made once per session."""
    from rag_factory.models.embedding.onnx_export import export_onnx

    return export_onnx(minilm_dir, tmp_path_factory.mktemp("onnx") / "minilm-onnx")


@pytest.fixture(scope="session")
def shared_loader(model_cache_dir: Path) -> Iterator[CustomModelLoader]:
    """One loader for the session so each real model is loaded once."""
    loader = CustomModelLoader(cache_dir=model_cache_dir)
    yield loader
    loader.clear_cache()


@dataclass
class RunningSidecar:
    """A started server, its address and the core objects behind it."""

    address: str
    server: grpc.Server
    services: SidecarServices


def register_minilm_onnx(
    registry: ModelRegistry | Path,
    model_id: str,
    version: str,
    artifact: Path,
    *,
    model_name: str = "minilm",
    load_config: Mapping[str, Any] | None = None,
    **metadata_extra: Any,
) -> None:
    """Register an ONNX export of the bundled MiniLM (384 dimensions, 256 tokens) as ``model_name@version``.

    Args:
        registry: An open registry (left open), or the path of one (opened and closed here).
        model_id: The id of the new registration.
        version: Its semantic version within ``model_name``.
        artifact: The ONNX export to store with it (usually ``onnx_export_dir``; a test may pass a damaged one).
        model_name: The family the version belongs to.
        load_config: Loading options (pooling_strategy, quantization, batch_size, ...).
        **metadata_extra: Further ``EmbeddingModelMetadata`` fields: description, base_model, domain, ...
    """
    metadata = EmbeddingModelMetadata(
        model_id=model_id,
        model_name=model_name,
        version=version,
        format="onnx",
        embedding_dim=384,
        max_seq_length=256,
        **metadata_extra,
    )
    if isinstance(registry, ModelRegistry):
        registry.register_model(metadata, artifact_path=artifact, load_config=load_config)
        return
    opened = ModelRegistry(registry)
    try:
        opened.register_model(metadata, artifact_path=artifact, load_config=load_config)
    finally:
        opened.close()


@pytest.fixture(scope="session")
def sidecar_registry_path(onnx_export_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A registry with: minilm-onnx (1.0.0, default, production), minilm-onnx-int8 (1.1.0), minilm-old (0.9.0, deprecated)."""
    path = tmp_path_factory.mktemp("sidecar-registry")
    registry = ModelRegistry(path)
    register_minilm_onnx(
        registry, "minilm-onnx", "1.0.0", onnx_export_dir, domain="scientific", description="fp32 ONNX"
    )
    register_minilm_onnx(
        registry,
        "minilm-onnx-int8",
        "1.1.0",
        onnx_export_dir,
        load_config={"quantization": "int8"},
        domain="scientific",
        base_model="minilm-onnx",
        description="int8 ONNX",
    )
    register_minilm_onnx(registry, "minilm-old", "0.9.0", onnx_export_dir, domain="scientific")
    registry.deprecate("minilm-old", reason="superseded by 1.0.0")
    registry.set_alias("minilm", "production", "minilm-onnx")
    registry.close()
    return path


def start_sidecar(registry_path: Path, cache_dir: Path, **overrides: object) -> RunningSidecar:
    """Start a real sidecar on a free loopback port and wait until it reports SERVING."""
    settings = SidecarSettings.model_validate(
        {
            "address": "127.0.0.1:0",
            "models": {
                "embedding": {
                    "default_model_id": "minilm-onnx",
                    "registry_path": str(registry_path),
                    "cache_dir": str(cache_dir),
                    # Test artifacts (ONNX exports, tmp_path files) live under the temp folder.
                    "import_roots": [tempfile.gettempdir()],
                    "data_roots": [tempfile.gettempdir()],
                }
            },
            "load_entry_point_plugins": False,
            # HTTP on a free port too: the default, 127.0.0.1:8080, would be taken by the session's sidecar.
            "http_address": "127.0.0.1:0",
            **overrides,
        }
    )
    services = build_services(settings)
    server, port = build_server(settings, services)
    if not services.ready.wait(timeout=120):
        server.stop(None)
        raise RuntimeError("the sidecar did not become ready")
    return RunningSidecar(f"127.0.0.1:{port}", server, services)


@pytest.fixture(scope="session")
def running_sidecar(sidecar_registry_path: Path, model_cache_dir: Path) -> Iterator[RunningSidecar]:
    """One real sidecar for the whole session."""
    sidecar = start_sidecar(sidecar_registry_path, model_cache_dir)
    yield sidecar
    sidecar.server.stop(grace=5).wait()
    sidecar.services.close()  # joins the batcher threads before the interpreter exits


@pytest.fixture(scope="session")
def sidecar_address(running_sidecar: RunningSidecar) -> str:
    """'127.0.0.1:PORT' of the session's sidecar."""
    return running_sidecar.address


@pytest.fixture
def channel(sidecar_address: str) -> Iterator[grpc.Channel]:
    """A plain gRPC channel to the session's sidecar."""
    with grpc.insecure_channel(sidecar_address) as chan:
        yield chan


@pytest.fixture
def sidecar_factory(model_cache_dir: Path) -> Iterator[object]:
    """Start extra sidecars with their own settings; all are stopped after the test."""
    started: list[RunningSidecar] = []

    def factory(registry_path: Path, **overrides: object) -> RunningSidecar:
        sidecar = start_sidecar(registry_path, model_cache_dir, **overrides)
        started.append(sidecar)
        return sidecar

    yield factory
    for sidecar in started:
        sidecar.server.stop(grace=2).wait()
        sidecar.services.close()


@pytest.fixture
def private_registry_path(sidecar_registry_path: Path, tmp_path: Path) -> Path:
    """A copy of the session registry that a test may change freely."""
    import shutil

    target = tmp_path / "registry"
    shutil.copytree(sidecar_registry_path, target)
    return target


@pytest.fixture
def damaged_sidecar(private_registry_path: Path, sidecar_factory: object, tmp_path: Path) -> RunningSidecar:
    """A sidecar (default model minilm-onnx) whose registry also holds ``ft@1.1.0`` with damaged weights."""
    damaged = tmp_path / "ft-1.1.0"
    damaged.mkdir()
    (damaged / "model.onnx").write_bytes(b"this is not an onnx graph")
    register_minilm_onnx(private_registry_path, "ft-1.1.0", "1.1.0", damaged, model_name="ft")
    sidecar: RunningSidecar = sidecar_factory(private_registry_path)  # type: ignore[operator]
    return sidecar
