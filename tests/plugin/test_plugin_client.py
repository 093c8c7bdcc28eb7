"""The plugin's gRPC client against the real sidecar: every path, both encodings, and errors mapped back."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from concurrent import futures

import grpc
import numpy as np
import pytest
from grpc_status import rpc_status

from plugin import MAX_BATCH_TEXTS, RagFactoryClient, build_embed_request, error_from_rpc
from rag_factory.errors import (
    DeadlineExceededError,
    InvalidArgumentError,
    ModelDeprecatedError,
    ModelNotFoundError,
    RagFactoryError,
    UnavailableError,
    all_error_classes,
)
from rag_factory_contract.v1 import embedding_pb2, model_pb2
from sidecar.errors import status_for

pytestmark = pytest.mark.slow

TEXTS = [
    "Autophagy declines in aged organisms.",
    "Aspirin lowers the risk of a second heart attack.",
    "Ethanol stress changes gene expression in bacteria.",
]


@pytest.fixture
def client(sidecar_address: str) -> Iterator[RagFactoryClient]:
    with RagFactoryClient(sidecar_address, timeout_s=60) as rf_client:
        yield rf_client


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_embed_returns_one_normalised_384_dim_vector_per_text(client: RagFactoryClient) -> None:
    result = client.embed(TEXTS)

    assert result.vectors.shape == (3, 384)
    assert result.vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(result.vectors, axis=1), 1.0, atol=1e-4)


def test_embed_says_which_model_served_it(client: RagFactoryClient) -> None:
    result = client.embed(TEXTS)

    assert (result.model_id, result.version, result.variant, result.fallback) == ("minilm-onnx", "1.0.0", "", False)
    assert result.served_by.model_name == "minilm"
    assert result.timings[0].total_ms > 0
    assert result.latency_ms >= result.timings[0].total_ms


def test_sync_async_and_batched_paths_give_identical_vectors(client: RagFactoryClient) -> None:
    sync = client.embed(TEXTS).vectors
    async_ = asyncio.run(client.aembed(TEXTS)).vectors
    batched = client.embed_batched(TEXTS, batch_size=1).vectors
    async_batched = asyncio.run(client.aembed_batched(TEXTS, batch_size=2)).vectors

    for other in (async_, batched, async_batched):
        np.testing.assert_allclose(other, sync, atol=1e-5)


def test_packed_and_repeated_encodings_give_identical_vectors(client: RagFactoryClient) -> None:
    packed = client.embed(TEXTS, encoding="packed").vectors
    repeated = client.embed(TEXTS, encoding="repeated").vectors

    np.testing.assert_allclose(repeated, packed, atol=1e-5)


def test_embed_batched_splits_at_the_server_limit(client: RagFactoryClient) -> None:
    texts = [f"claim number {i}" for i in range(MAX_BATCH_TEXTS + 44)]

    result = client.embed_batched(texts)

    assert result.count == len(texts)
    assert len(result.request_ids) == 2
    np.testing.assert_allclose(result.vectors[-1], client.embed(texts[-1:]).vectors[0], atol=1e-5)


def test_a_model_can_be_named_by_id(client: RagFactoryClient) -> None:
    result = client.embed(TEXTS[:1], model="minilm-onnx-int8")

    assert (result.model_id, result.version) == ("minilm-onnx-int8", "1.1.0")


@pytest.mark.parametrize(
    ("texts", "model", "expected"),
    [
        (TEXTS, "no-such-model", ModelNotFoundError),
        (TEXTS, "minilm-old", ModelDeprecatedError),
        ([], "", InvalidArgumentError),
        (["fine", ""], "", InvalidArgumentError),
        (["x" * 40_000], "", InvalidArgumentError),
        (["t"] * (MAX_BATCH_TEXTS + 1), "", InvalidArgumentError),
    ],
    ids=["unknown-model", "deprecated-version", "empty-batch", "empty-string", "over-long-text", "too-many-texts"],
)
def test_sidecar_errors_come_back_as_core_errors(
    client: RagFactoryClient, texts: list[str], model: str, expected: type[RagFactoryError]
) -> None:
    with pytest.raises(expected) as caught:
        client.embed(texts, model=model)

    assert isinstance(caught.value.__cause__, grpc.RpcError)
    assert caught.value.message == caught.value.__cause__.details()  # type: ignore[attr-defined]


def test_async_errors_are_mapped_too(client: RagFactoryClient) -> None:
    with pytest.raises(ModelNotFoundError, match="no-such-model"):
        asyncio.run(client.aembed(TEXTS, model="no-such-model"))


def test_model_info_of_an_unknown_model_raises_model_not_found(client: RagFactoryClient) -> None:
    with pytest.raises(ModelNotFoundError):
        client.model_info("no-such-model")


def test_an_unreachable_sidecar_raises_unavailable_naming_the_address() -> None:
    address = f"127.0.0.1:{_free_port()}"
    rf_client = RagFactoryClient(address, timeout_s=5)

    with pytest.raises(UnavailableError, match=address):
        rf_client.embed(TEXTS)


def test_a_passed_deadline_raises_deadline_exceeded(client: RagFactoryClient) -> None:
    with pytest.raises(DeadlineExceededError, match="deadline"):
        client.embed(TEXTS, timeout=0.0001)


def test_server_info_reports_the_limits_and_default_model(client: RagFactoryClient) -> None:
    info = client.server_info()

    assert info.limits.max_batch_texts == MAX_BATCH_TEXTS
    assert info.limits.max_message_bytes == 16 * 1024 * 1024
    assert info.default_model == "minilm-onnx"


def test_model_info_resolves_an_alias(client: RagFactoryClient) -> None:
    info = client.model_info("minilm@production")

    assert (info.model_id, info.version, info.embedding_dimension) == ("minilm-onnx", "1.0.0", 384)


def test_readiness_of_the_default_model_is_ready(client: RagFactoryClient) -> None:
    readiness = client.readiness()

    assert (readiness.model_id, readiness.state) == ("minilm-onnx", model_pb2.READINESS_STATE_READY)


def test_one_string_instead_of_a_list_is_refused() -> None:
    with pytest.raises(InvalidArgumentError, match="list of strings"):
        build_embed_request("just one text")


def test_a_batch_size_above_the_server_limit_is_refused(client: RagFactoryClient) -> None:
    with pytest.raises(InvalidArgumentError, match="batch_size"):
        client.embed_batched(TEXTS, batch_size=MAX_BATCH_TEXTS + 1)


def test_an_unknown_encoding_is_refused() -> None:
    with pytest.raises(InvalidArgumentError, match="packed, repeated"):
        RagFactoryClient("127.0.0.1:1", encoding="base64")  # type: ignore[arg-type]


def test_the_request_builder_sets_every_field() -> None:
    request = build_embed_request(
        ["a"],
        model="minilm@production",
        routing_key="user-7",
        domain="medical",
        request_id="r1",
        encoding="repeated",
        allow_fallback=True,
    )

    assert request == embedding_pb2.EmbedRequest(
        texts=["a"],
        model="minilm@production",
        routing_key="user-7",
        domain="medical",
        request_id="r1",
        encoding=embedding_pb2.VECTOR_ENCODING_REPEATED_FLOAT,
        allow_fallback=True,
    )


@pytest.fixture(scope="module")
def raising_server_address() -> Iterator[str]:
    """A real gRPC server whose one method aborts with the sidecar's status for the error class it is named after."""
    classes = {cls.__name__: cls for cls in all_error_classes()}

    def aborting_with(error_class: type[RagFactoryError]) -> grpc.RpcMethodHandler:
        def abort(request: bytes, context: grpc.ServicerContext) -> bytes:
            context.abort_with_status(rpc_status.to_status(status_for(error_class("it failed", model_id="m1"))))
            return b""

        return grpc.unary_unary_rpc_method_handler(abort)

    class Handler(grpc.GenericRpcHandler):  # type: ignore[misc]
        def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
            return aborting_with(classes[handler_call_details.method.rsplit("/", 1)[1]])

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    server.add_generic_rpc_handlers((Handler(),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}"
    server.stop(None)


@pytest.mark.parametrize("error_class", all_error_classes(), ids=lambda cls: cls.__name__)
def test_every_core_error_class_survives_the_round_trip(
    raising_server_address: str, error_class: type[RagFactoryError]
) -> None:
    with grpc.insecure_channel(raising_server_address) as channel:
        call = channel.unary_unary(f"/test.Raise/{error_class.__name__}")
        with pytest.raises(grpc.RpcError) as caught:
            call(b"", timeout=10)

    mapped = error_from_rpc(caught.value)

    assert type(mapped) is error_class
    assert (mapped.message, mapped.metadata) == ("it failed", {"model_id": "m1"})
