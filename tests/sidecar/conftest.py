"""A real sidecar on 127.0.0.1:<free port>, serving a real registry with ONNX exports of MiniLM."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from rag_factory.models.embedding import EmbeddingModelMetadata, ModelRegistry
from sidecar.server import SidecarServices, build_server, build_services
from sidecar.settings import SidecarSettings


@dataclass
class RunningSidecar:
    """A started server, its address and the core objects behind it."""

    address: str
    server: grpc.Server
    services: SidecarServices


def _metadata(model_id: str, version: str, **extra: object) -> EmbeddingModelMetadata:
    return EmbeddingModelMetadata(
        model_id=model_id,
        model_name="minilm",
        version=version,
        format="onnx",
        embedding_dim=384,
        max_seq_length=256,
        domain="scientific",
        **extra,
    )


@pytest.fixture(scope="session")
def sidecar_registry_path(onnx_export_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A registry with: minilm-onnx (1.0.0, default, production), minilm-onnx-int8 (1.1.0), minilm-old (0.9.0, deprecated)."""
    path = tmp_path_factory.mktemp("sidecar-registry")
    registry = ModelRegistry(path)
    registry.register_model(_metadata("minilm-onnx", "1.0.0", description="fp32 ONNX"), artifact_path=onnx_export_dir)
    registry.register_model(
        _metadata("minilm-onnx-int8", "1.1.0", base_model="minilm-onnx", description="int8 ONNX"),
        artifact_path=onnx_export_dir,
        load_config={"quantization": "int8"},
    )
    registry.register_model(_metadata("minilm-old", "0.9.0"), artifact_path=onnx_export_dir)
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
                }
            },
            "load_entry_point_plugins": False,
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
