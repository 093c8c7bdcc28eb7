"""Matryoshka dimensions: a request may ask for the first N values of each vector, re-normalised.

The same truncation answers over gRPC (``EmbedRequest.dimensions``) and through the LlamaIndex plugin
(``RagFactoryEmbedding(dimensions=N)``); a value out of the model's range is the caller's mistake.
"""

from __future__ import annotations

import grpc
import numpy as np
import pytest

from plugin import RagFactoryClient, RagFactoryEmbedding
from rag_factory.errors import InvalidArgumentError
from rag_factory.serving.engine import check_dimensions, truncated
from rag_factory_contract.v1 import embedding_pb2, embedding_pb2_grpc

TEXTS = ["Vitamin D supplementation prevents fractures.", "BRCA1 mutations raise breast cancer risk."]


def _vectors(response: embedding_pb2.EmbedResponse) -> np.ndarray:
    return np.frombuffer(response.packed, dtype="<f4").reshape(response.count, response.dimension)


def test_truncation_keeps_the_prefix_and_scales_it_back_to_unit_length() -> None:
    full = np.array([[0.6, 0.0, 0.8, 0.0], [0.0, 1.0, 0.0, 0.0]], dtype=np.float32)
    cut = truncated(full, 2, "m")
    assert cut.shape == (2, 2)
    assert np.allclose(cut, [[1.0, 0.0], [0.0, 1.0]])
    assert truncated(full, None, "m") is full
    assert truncated(full, 4, "m") is full


@pytest.mark.parametrize("dimensions", [0, -3, 385])
def test_a_dimension_outside_one_to_the_models_own_is_refused(dimensions: int) -> None:
    with pytest.raises(InvalidArgumentError, match=r"ask for 1 to 384"):
        check_dimensions(dimensions, 384, "minilm-onnx")


@pytest.mark.slow
def test_grpc_requests_get_the_re_normalised_prefix_of_the_full_vectors(channel: grpc.Channel) -> None:
    stub = embedding_pb2_grpc.EmbeddingServiceStub(channel)
    full = _vectors(stub.Embed(embedding_pb2.EmbedRequest(texts=TEXTS), timeout=30))
    short = stub.Embed(embedding_pb2.EmbedRequest(texts=TEXTS, dimensions=128), timeout=30)
    assert (short.count, short.dimension) == (2, 128)
    vectors = _vectors(short)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    expected = full[:, :128] / np.linalg.norm(full[:, :128], axis=1, keepdims=True)
    assert np.allclose(vectors, expected, atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("dimensions", [0, 385])
def test_grpc_refuses_zero_or_more_dimensions_than_the_model_has(channel: grpc.Channel, dimensions: int) -> None:
    # The field is optional: 0 is a value the client set (refused, as over HTTP), not "unset".
    stub = embedding_pb2_grpc.EmbeddingServiceStub(channel)
    with pytest.raises(grpc.RpcError) as caught:
        stub.Embed(embedding_pb2.EmbedRequest(texts=TEXTS, dimensions=dimensions), timeout=30)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert f"dimensions {dimensions} is out of range" in (caught.value.details() or "")


@pytest.mark.slow
def test_grpc_without_dimensions_gets_the_full_vectors(channel: grpc.Channel) -> None:
    stub = embedding_pb2_grpc.EmbeddingServiceStub(channel)
    assert stub.Embed(embedding_pb2.EmbedRequest(texts=TEXTS), timeout=30).dimension == 384


@pytest.mark.slow
def test_the_plugin_embeds_queries_and_documents_at_the_asked_dimension(sidecar_address: str) -> None:
    embed_model = RagFactoryEmbedding(address=sidecar_address, dimensions=64, timeout_s=60, load_plugins=False)
    query = np.array(embed_model.get_query_embedding(TEXTS[0]))
    documents = np.array(embed_model.get_text_embedding_batch(TEXTS))
    assert query.shape == (64,) and documents.shape == (2, 64)
    assert np.isclose(np.linalg.norm(query), 1.0, atol=1e-5)
    # The query is the first document's text: the same vector space, so the same vector.
    assert np.allclose(query, documents[0], atol=1e-5)


def test_the_client_refuses_a_dimension_below_one_the_wire_cannot_carry() -> None:
    with pytest.raises(InvalidArgumentError, match="at least 1"):
        RagFactoryClient("127.0.0.1:1").embed(TEXTS, dimensions=0)
