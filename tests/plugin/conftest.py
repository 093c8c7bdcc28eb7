"""A sidecar whose registry holds two vector spaces of ``minilm``, for pinned-index and A/B retrieval tests."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from llama_index.core.schema import TextNode

from rag_factory.data.beir import BeirDataset
from rag_factory_contract.v1 import registry_pb2, registry_pb2_grpc
from tests.conftest import register_minilm_onnx

CANDIDATE_ID = "minilm-onnx-cls"


@dataclass
class TwoSpaces:
    """A running sidecar: ``minilm@production`` is minilm-onnx 1.0.0 (mean pooling); 2.0.0 is CLS pooling."""

    address: str
    registry_path: Path

    def set_alias(self, alias: str, target: str) -> None:
        """Move ``minilm@alias`` through the sidecar's registry service, as an operator would."""
        with grpc.insecure_channel(self.address) as channel:
            request = registry_pb2.SetAliasRequest(model_name="minilm", alias=alias, target=target)
            registry_pb2_grpc.RegistryServiceStub(channel).SetAlias(request, timeout=30)

    def deprecate(self, model_id: str) -> None:
        with grpc.insecure_channel(self.address) as channel:
            request = registry_pb2.DeprecateModelRequest(model_id=model_id, reason="superseded")
            registry_pb2_grpc.RegistryServiceStub(channel).DeprecateModel(request, timeout=30)

    def delete(self, model_id: str) -> None:
        with grpc.insecure_channel(self.address) as channel:
            request = registry_pb2.DeleteModelRequest(model_id=model_id)
            assert registry_pb2_grpc.RegistryServiceStub(channel).DeleteModel(request, timeout=30).deleted


def register_cls_candidate(registry_path: Path, onnx_export_dir: Path) -> None:
    """Register minilm 2.0.0: the same weights with CLS pooling, so a genuinely different vector space."""
    register_minilm_onnx(
        registry_path,
        CANDIDATE_ID,
        "2.0.0",
        onnx_export_dir,
        load_config={"pooling_strategy": "cls"},
        description="CLS pooling: another vector space than 1.0.0",
    )


@pytest.fixture
def two_spaces(private_registry_path: Path, onnx_export_dir: Path, sidecar_factory: Callable[..., object]) -> TwoSpaces:
    register_cls_candidate(private_registry_path, onnx_export_dir)
    sidecar = sidecar_factory(private_registry_path)
    return TwoSpaces(address=sidecar.address, registry_path=private_registry_path)  # type: ignore[attr-defined]


def corpus_nodes(dataset: BeirDataset, count: int | None = None) -> list[TextNode]:
    """SciFact documents as nodes; ids are UUIDs derived from the doc ids, as Qdrant requires."""
    docs = list(dataset.corpus.values())[:count]
    return [
        TextNode(
            id_=str(uuid.uuid5(uuid.NAMESPACE_URL, f"scifact/{doc.doc_id}")),
            text=doc.as_text(),
            metadata={"doc_id": doc.doc_id},
            excluded_embed_metadata_keys=["doc_id"],
            excluded_llm_metadata_keys=["doc_id"],
        )
        for doc in docs
    ]
