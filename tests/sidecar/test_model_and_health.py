"""ModelService, the standard health service and server reflection on the real sidecar."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from rag_factory.models.embedding import CustomModelLoader
from rag_factory_contract.v1 import embedding_pb2, embedding_pb2_grpc, model_pb2, model_pb2_grpc
from tests.conftest import register_minilm_onnx

pytestmark = pytest.mark.slow


def test_health_reports_serving_once_the_default_model_is_loaded(channel: grpc.Channel) -> None:
    stub = health_pb2_grpc.HealthStub(channel)
    for service in ("", "rag_factory.v1.EmbeddingService"):
        response = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        assert response.status == health_pb2.HealthCheckResponse.SERVING


def test_reflection_lists_every_service(channel: grpc.Channel) -> None:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    responses = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
    names = {s.name for s in next(responses).list_services_response.service}
    assert {
        "rag_factory.v1.EmbeddingService",
        "rag_factory.v1.ModelService",
        "rag_factory.v1.RegistryService",
        "grpc.health.v1.Health",
    } <= names


def test_server_info_documents_the_limits(channel: grpc.Channel) -> None:
    info = model_pb2_grpc.ModelServiceStub(channel).GetServerInfo(model_pb2.GetServerInfoRequest(), timeout=5)
    assert (info.limits.max_batch_texts, info.limits.max_text_chars) == (256, 32_768)
    assert info.limits.max_message_bytes == 16 * 1024 * 1024
    assert info.default_model == "minilm-onnx"


def test_readiness_is_per_model_and_can_trigger_a_load(channel: grpc.Channel) -> None:
    stub = model_pb2_grpc.ModelServiceStub(channel)
    default = stub.GetModelReadiness(model_pb2.GetModelReadinessRequest(), timeout=30)
    assert (default.model_id, default.state) == ("minilm-onnx", model_pb2.READINESS_STATE_READY)
    loaded = stub.GetModelReadiness(model_pb2.GetModelReadinessRequest(model="minilm-onnx-int8", load=True), timeout=60)
    assert loaded.state == model_pb2.READINESS_STATE_READY
    deprecated = stub.GetModelReadiness(model_pb2.GetModelReadinessRequest(model="minilm-old", load=True), timeout=30)
    assert deprecated.state == model_pb2.READINESS_STATE_NOT_LOADED


def test_model_info_and_loaded_models(channel: grpc.Channel) -> None:
    stub = model_pb2_grpc.ModelServiceStub(channel)
    info = stub.GetModelInfo(model_pb2.GetModelInfoRequest(model="minilm@production"), timeout=5).info
    assert (info.model_id, info.embedding_dimension, info.max_seq_length, info.loaded) == (
        "minilm-onnx",
        384,
        256,
        True,
    )
    listed = stub.ListLoadedModels(model_pb2.ListLoadedModelsRequest(), timeout=5)
    assert "minilm-onnx" in {m.model_id for m in listed.models}
    assert 0 < listed.cache_used_bytes <= listed.cache_budget_bytes


def test_unknown_model_info_is_not_found(channel: grpc.Channel) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        model_pb2_grpc.ModelServiceStub(channel).GetModelInfo(model_pb2.GetModelInfoRequest(model="nope"), timeout=5)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


def test_loaded_models_stay_within_the_cache_budget(
    sidecar_factory: Callable[..., Any],
    private_registry_path: Path,
    onnx_export_dir: Path,
    model_cache_dir: Path,
) -> None:
    """With room for two models, serving a third evicts the least recently used; the list says so."""
    for model_id, batch_size in (("minilm-b8", 8), ("minilm-b16", 16)):  # distinct options: distinct models
        register_minilm_onnx(
            private_registry_path,
            model_id,
            "1.0.0",
            onnx_export_dir,
            model_name=model_id,
            load_config={"batch_size": batch_size},
        )
    one_model = CustomModelLoader(cache_dir=model_cache_dir).load_model(
        {"model_path": str(onnx_export_dir), "model_format": "onnx"}
    )
    sidecar = sidecar_factory(
        private_registry_path,
        models={
            "embedding": {
                "default_model_id": "minilm-onnx",
                "registry_path": str(private_registry_path),
                "cache_dir": str(model_cache_dir),
                "cache_size_gb": 2.5 * one_model.memory_bytes / 1024**3,
            }
        },
    )
    with grpc.insecure_channel(sidecar.address) as channel:
        embed = embedding_pb2_grpc.EmbeddingServiceStub(channel).Embed
        for model_id in ("minilm-b8", "minilm-b16"):  # the default (minilm-onnx) was loaded at start
            assert embed(embedding_pb2.EmbedRequest(texts=["x"], model=model_id), timeout=60).count == 1
        models = model_pb2_grpc.ModelServiceStub(channel)
        listed = models.ListLoadedModels(model_pb2.ListLoadedModelsRequest(), timeout=5)
        evicted = models.GetModelReadiness(model_pb2.GetModelReadinessRequest(model="minilm-onnx"), timeout=5)

    assert sorted(m.model_id for m in listed.models) == ["minilm-b16", "minilm-b8"]
    assert listed.cache_used_bytes == 2 * one_model.memory_bytes <= listed.cache_budget_bytes
    assert evicted.state == model_pb2.READINESS_STATE_NOT_LOADED
