"""RegistryService over real gRPC: every RPC, on a private registry copy so other tests are unaffected."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from google.protobuf import struct_pb2

from rag_factory_contract.v1 import registry_pb2 as pb
from rag_factory_contract.v1 import registry_pb2_grpc

pytestmark = pytest.mark.slow


@pytest.fixture
def stub(
    private_registry_path: Path, sidecar_factory: Callable[..., object]
) -> Iterator[registry_pb2_grpc.RegistryServiceStub]:
    sidecar = sidecar_factory(private_registry_path)
    with grpc.insecure_channel(sidecar.address) as channel:  # type: ignore[attr-defined]
        yield registry_pb2_grpc.RegistryServiceStub(channel)


def _metadata(model_id: str, version: str, **extra: object) -> pb.ModelMetadata:
    return pb.ModelMetadata(
        model_id=model_id,
        model_name="minilm",
        version=version,
        format=pb.MODEL_FORMAT_ONNX,
        embedding_dim=384,
        max_seq_length=256,
        **extra,
    )


def test_register_get_and_list(stub: registry_pb2_grpc.RegistryServiceStub, onnx_export_dir: Path) -> None:
    config = struct_pb2.Struct()
    config.update({"quantization": "int8"})
    registered = stub.RegisterModel(
        pb.RegisterModelRequest(
            metadata=_metadata("minilm-2", "2.0.0", base_model="minilm-onnx", tags=["int8", "scifact"]),
            artifact_path=str(onnx_export_dir),
            load_config=config,
            metrics={"ndcg_at_10": 0.65, "p99_ms": 12.0},
        ),
        timeout=60,
    ).record
    assert len(registered.artifact_sha256) == 64
    assert dict(registered.metrics) == {"ndcg_at_10": 0.65, "p99_ms": 12.0}
    fetched = stub.GetModel(pb.GetModelRequest(model="minilm@2.0.0"), timeout=5).record
    assert fetched.metadata.model_id == "minilm-2" and dict(fetched.load_config) == {"quantization": "int8"}
    tagged = stub.ListModels(pb.ListModelsRequest(tags=["scifact"]), timeout=5).records
    assert [r.metadata.model_id for r in tagged] == ["minilm-2"]
    ranged = stub.ListModels(pb.ListModelsRequest(version_range=">=1.0.0,<2.0.0", exclude_deprecated=True), timeout=5)
    assert {r.metadata.model_id for r in ranged.records} == {"minilm-onnx", "minilm-onnx-int8"}
    assert stub.ListModels(pb.ListModelsRequest(text="INT8 onnx"), timeout=5).records[0].metadata.model_id == (
        "minilm-onnx-int8"
    )


def test_register_refuses_a_duplicate_version(stub: registry_pb2_grpc.RegistryServiceStub) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        stub.RegisterModel(pb.RegisterModelRequest(metadata=_metadata("other-id", "1.0.0")), timeout=5)
    assert caught.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert "minilm@1.0.0 is already registered" in caught.value.details()


@pytest.mark.parametrize(
    ("metadata", "fragment"),
    [
        (_metadata("x", "1.0"), "semantic version"),
        (pb.ModelMetadata(model_id="x", model_name="x", version="1.0.0"), "format must be set"),
    ],
    ids=["invalid-semver", "missing-format"],
)
def test_register_refuses_invalid_metadata(
    stub: registry_pb2_grpc.RegistryServiceStub, metadata: pb.ModelMetadata, fragment: str
) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        stub.RegisterModel(pb.RegisterModelRequest(metadata=metadata), timeout=5)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT and fragment in caught.value.details()


def test_update_metrics_and_unknown_model(stub: registry_pb2_grpc.RegistryServiceStub) -> None:
    record = stub.UpdateMetrics(pb.UpdateMetricsRequest(model_id="minilm-onnx", metrics={"mrr_score": 0.6}), timeout=5)
    assert record.record.metrics["mrr_score"] == pytest.approx(0.6)
    with pytest.raises(grpc.RpcError) as caught:
        stub.UpdateMetrics(pb.UpdateMetricsRequest(model_id="ghost", metrics={"x": 1.0}), timeout=5)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


def test_alias_set_and_rollback(stub: registry_pb2_grpc.RegistryServiceStub) -> None:
    moved = stub.SetAlias(pb.SetAliasRequest(model_name="minilm", alias="production", target="1.1.0"), timeout=5)
    assert moved.record.metadata.model_id == "minilm-onnx-int8" and "production" in moved.record.aliases
    back = stub.RollbackAlias(pb.RollbackAliasRequest(model_name="minilm", alias="production"), timeout=5)
    assert back.record.metadata.model_id == "minilm-onnx"
    with pytest.raises(grpc.RpcError) as caught:
        stub.SetAlias(pb.SetAliasRequest(model_name="minilm", alias="candidate", target="9.9.9"), timeout=5)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


def test_deprecate_and_undo(stub: registry_pb2_grpc.RegistryServiceStub) -> None:
    done = stub.DeprecateModel(pb.DeprecateModelRequest(model_id="minilm-onnx-int8", reason="drift"), timeout=5)
    assert done.record.deprecated and done.record.deprecation_reason == "drift"
    undone = stub.DeprecateModel(pb.DeprecateModelRequest(model_id="minilm-onnx-int8", undo=True), timeout=5)
    assert not undone.record.deprecated


def test_compare_and_lineage(stub: registry_pb2_grpc.RegistryServiceStub) -> None:
    stub.UpdateMetrics(pb.UpdateMetricsRequest(model_id="minilm-onnx", metrics={"ndcg_at_10": 0.60}), timeout=5)
    stub.UpdateMetrics(pb.UpdateMetricsRequest(model_id="minilm-onnx-int8", metrics={"ndcg_at_10": 0.65}), timeout=5)
    comparison = stub.CompareModels(pb.CompareModelsRequest(model_a="minilm-onnx", model_b="minilm@1.1.0"), timeout=5)
    assert {d.field for d in comparison.metadata_differences} >= {"version", "model_id"}
    ndcg = next(m for m in comparison.metrics if m.name == "ndcg_at_10")
    assert ndcg.delta == pytest.approx(0.05)
    lineage = stub.GetLineage(pb.GetLineageRequest(model_id="minilm-onnx"), timeout=5)
    assert list(lineage.descendants) == ["minilm-onnx-int8"] and not lineage.ancestors


def test_delete_refuses_an_aliased_model_and_reports_unknown_ids(stub: registry_pb2_grpc.RegistryServiceStub) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        stub.DeleteModel(pb.DeleteModelRequest(model_id="minilm-onnx"), timeout=5)
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "production" in caught.value.details()
    assert stub.DeleteModel(pb.DeleteModelRequest(model_id="minilm-old"), timeout=5).deleted
    assert not stub.DeleteModel(pb.DeleteModelRequest(model_id="minilm-old"), timeout=5).deleted
