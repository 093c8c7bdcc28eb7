"""EmbeddingService against the real sidecar: vectors, provenance, encodings, streaming and bad input."""

from __future__ import annotations

import grpc
import numpy as np
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from rag_factory.models.embedding import CustomModelLoader, ModelConfig
from rag_factory_contract.v1 import common_pb2, embedding_pb2, embedding_pb2_grpc

pytestmark = pytest.mark.slow

PACKED = embedding_pb2.VECTOR_ENCODING_PACKED_FLOAT32
REPEATED = embedding_pb2.VECTOR_ENCODING_REPEATED_FLOAT


def _vectors(response: embedding_pb2.EmbedResponse) -> np.ndarray:
    if response.encoding == PACKED:
        return np.frombuffer(response.packed, dtype="<f4").reshape(response.count, response.dimension)
    return np.array([list(v.values) for v in response.vectors], dtype=np.float32)


def _embed(channel: grpc.Channel, texts: list[str], **fields: object) -> embedding_pb2.EmbedResponse:
    stub = embedding_pb2_grpc.EmbeddingServiceStub(channel)
    return stub.Embed(embedding_pb2.EmbedRequest(texts=texts, **fields), timeout=30)


def test_embed_returns_one_vector_per_text_stamped_with_the_serving_model(channel: grpc.Channel) -> None:
    response = _embed(channel, ["Aspirin lowers heart attack risk.", "BRCA1 mutations"])
    assert (response.count, response.dimension) == (2, 384)
    served = response.served_by
    assert (served.model_id, served.model_name, served.version) == ("minilm-onnx", "minilm", "1.0.0")
    assert (served.backend, served.precision, served.fallback) == ("onnx", "fp32", False)
    assert served.variant == common_pb2.VARIANT_UNSPECIFIED
    assert response.timings.inference_ms > 0 and response.timings.total_ms >= response.timings.inference_ms
    assert response.request_id


def test_vectors_equal_in_process_encoding(channel: grpc.Channel, onnx_export_dir: object) -> None:
    texts = ["Vitamin D supplementation prevents fractures.", "Statins and dementia"]
    local = CustomModelLoader().load_model(ModelConfig(model_path=str(onnx_export_dir), model_format="onnx"))
    remote = _vectors(_embed(channel, texts))
    assert np.allclose(remote, local.encode(texts), atol=1e-6)


def test_packed_and_repeated_encodings_carry_the_same_vectors(channel: grpc.Channel) -> None:
    texts = ["one text", "another, longer text about proteins"]
    packed = _embed(channel, texts, encoding=PACKED)
    repeated = _embed(channel, texts, encoding=REPEATED)
    assert packed.encoding == PACKED and not packed.vectors
    assert repeated.encoding == REPEATED and not repeated.packed
    assert np.allclose(_vectors(packed), _vectors(repeated))


@pytest.mark.parametrize(
    ("model", "model_id", "precision"),
    [
        ("minilm-onnx-int8", "minilm-onnx-int8", "int8"),
        ("minilm@1.1.0", "minilm-onnx-int8", "int8"),
        ("minilm@production", "minilm-onnx", "fp32"),
        ("minilm", "minilm-onnx", "fp32"),
    ],
    ids=["by-id", "by-version", "by-alias", "bare-name"],
)
def test_model_references_resolve_to_the_right_version(
    channel: grpc.Channel, model: str, model_id: str, precision: str
) -> None:
    served = _embed(channel, ["cell biology"], model=model).served_by
    assert (served.model_id, served.precision, served.requested_model) == (model_id, precision, model)


def test_stream_answers_each_batch_in_order(channel: grpc.Channel) -> None:
    stub = embedding_pb2_grpc.EmbeddingServiceStub(channel)
    batches = [["a"], ["b", "c"], ["d", "e", "f"]]
    requests = (embedding_pb2.EmbedStreamRequest(request=embedding_pb2.EmbedRequest(texts=b)) for b in batches)
    responses = list(stub.EmbedStream(requests, timeout=30))
    assert [r.response.count for r in responses] == [1, 2, 3]
    assert all(r.response.served_by.model_id == "minilm-onnx" for r in responses)


def test_texts_longer_than_the_token_limit_are_truncated_not_refused(channel: grpc.Channel) -> None:
    long_text = "protein folding " * 1000  # ~16,000 characters, far beyond 256 tokens
    assert _embed(channel, [long_text]).count == 1


@pytest.mark.parametrize(
    ("fields", "code", "reason", "message"),
    [
        ({"texts": []}, grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT", "texts is empty"),
        ({"texts": ["ok", "  "]}, grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT", r"texts\[1\] is empty"),
        ({"texts": ["x" * 40_000]}, grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT", "over the limit"),
        ({"texts": ["t"] * 257}, grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT", "257 texts exceed"),
        ({"texts": ["t"], "model": "legal@2.1.0"}, grpc.StatusCode.NOT_FOUND, "MODEL_NOT_FOUND", "not registered"),
        (
            {"texts": ["t"], "model": "minilm@0.9.0"},
            grpc.StatusCode.FAILED_PRECONDITION,
            "MODEL_DEPRECATED",
            "superseded",
        ),
        ({"texts": ["t"], "encoding": 7}, grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT", "unknown vector"),
    ],
    ids=[
        "empty-batch",
        "empty-string",
        "over-long-text",
        "too-many-texts",
        "unknown-model",
        "deprecated-version",
        "wrong-encoding",
    ],
)
def test_bad_requests_get_the_right_status_and_reason(
    channel: grpc.Channel, fields: dict[str, object], code: grpc.StatusCode, reason: str, message: str
) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        _embed(channel, **fields)  # type: ignore[arg-type]
    error = caught.value
    assert error.code() == code
    import re

    assert re.search(message, error.details())
    status = rpc_status.from_call(error)
    assert status is not None
    info = error_details_pb2.ErrorInfo()
    status.details[0].Unpack(info)
    assert (info.reason, info.domain) == (reason, "rag-factory")
