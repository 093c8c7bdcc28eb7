"""The server cannot be hung, starved or taken over by what clients do with connections and tokens.

Regression tests of issue 18: cancelled health watches deadlocked the server (item 1); idle streams held
every worker thread (item 4); calls beyond the server's capacity waited for their deadline instead of being
refused (item 5, the gRPC level); any token holder could change what is served, and a streaming call
without a token answered UNIMPLEMENTED (item 9); health said SERVING while the default model could not
embed (item 12).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import descriptor_pool, message_factory
from grpc_health.v1 import health_pb2, health_pb2_grpc

from rag_factory_contract.v1 import embedding_pb2, embedding_pb2_grpc, registry_pb2, registry_pb2_grpc
from sidecar.access import ADMIN_RPCS, Role, rpc_roles
from tests.conftest import RunningSidecar

pytestmark = pytest.mark.slow

ADMIN = [("authorization", "Bearer admin-secret")]
CLIENT = [("authorization", "Bearer client-secret")]


def _embed_one(address: str, metadata: list[tuple[str, str]] | None = None, timeout: float = 10) -> int:
    with grpc.insecure_channel(address) as channel:
        stub = embedding_pb2_grpc.EmbeddingServiceStub(channel)
        response = stub.Embed(embedding_pb2.EmbedRequest(texts=["still alive"]), timeout=timeout, metadata=metadata)
        return int(response.count)


def _health(address: str, timeout: float = 5) -> int:
    with grpc.insecure_channel(address) as channel:
        return int(health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=timeout).status)


def test_health_watches_cancelled_in_a_loop_do_not_deadlock_the_server(
    private_registry_path: Path, sidecar_factory: Callable[..., RunningSidecar]
) -> None:
    """Item 1: two clients opening and cancelling Watch deadlocked grpcio's health servicer in ~10 calls."""
    sidecar = sidecar_factory(private_registry_path)

    def churn() -> int:
        opened = 0
        with grpc.insecure_channel(sidecar.address) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            for _ in range(60):
                call = stub.Watch(health_pb2.HealthCheckRequest(), timeout=5)
                assert next(call).status == health_pb2.HealthCheckResponse.SERVING
                call.cancel()
                opened += 1
        return opened

    with ThreadPoolExecutor(2) as pool:
        assert sum(pool.map(lambda _: churn(), range(2))) == 120
    assert _health(sidecar.address) == health_pb2.HealthCheckResponse.SERVING
    assert _embed_one(sidecar.address) == 1


def test_a_watch_sees_changes_and_ends_at_its_deadline(
    private_registry_path: Path, sidecar_factory: Callable[..., RunningSidecar]
) -> None:
    sidecar = sidecar_factory(private_registry_path)
    with grpc.insecure_channel(sidecar.address) as channel:
        call = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(), timeout=1.5)
        assert next(call).status == health_pb2.HealthCheckResponse.SERVING
        sidecar.services.health.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
        assert next(call).status == health_pb2.HealthCheckResponse.NOT_SERVING
        started = time.monotonic()
        try:  # the server ends the stream at the deadline, or the client's own deadline fires first
            assert list(call) == []
        except grpc.RpcError as ended:
            assert ended.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert time.monotonic() - started < 3


def _idle_stream(address: str, release: threading.Event) -> Iterator[embedding_pb2.EmbedStreamResponse]:
    """An EmbedStream whose client sends nothing until ``release`` is set."""

    def requests() -> Iterator[embedding_pb2.EmbedStreamRequest]:
        release.wait()
        return
        yield  # a generator that yields nothing

    channel = grpc.insecure_channel(address)
    call: Iterator[embedding_pb2.EmbedStreamResponse] = embedding_pb2_grpc.EmbeddingServiceStub(channel).EmbedStream(
        requests(), timeout=30
    )
    return call


def test_idle_streams_cannot_take_every_worker_thread(
    private_registry_path: Path, sidecar_factory: Callable[..., RunningSidecar]
) -> None:
    """Item 4: 16 idle EmbedStream calls held the 16 worker threads and every RPC stopped answering."""
    sidecar = sidecar_factory(
        private_registry_path, max_workers=6, concurrency={"max_streams": 3, "stream_idle_timeout_s": 60}
    )
    release = threading.Event()
    calls = [_idle_stream(sidecar.address, release) for _ in range(16)]
    try:
        with ThreadPoolExecutor(16) as pool:

            def outcome(call: Iterator[Any]) -> str:
                try:
                    next(call, None)
                    return "OK"
                except grpc.RpcError as exc:
                    return str(exc.code().name)

            futures = [pool.submit(outcome, call) for call in calls]
            done, admitted = wait(futures, timeout=3)
            # Streams beyond the cap are refused at once; those admitted stay open, idle.
            assert [f.result() for f in done] == ["RESOURCE_EXHAUSTED"] * 13
            assert len(admitted) == 3
            assert _health(sidecar.address) == health_pb2.HealthCheckResponse.SERVING
            assert _embed_one(sidecar.address, timeout=5) == 1
            release.set()
            assert [f.result(timeout=10) for f in admitted] == ["OK"] * 3
    finally:
        release.set()


def test_a_silent_client_stream_is_ended_after_the_idle_timeout(
    private_registry_path: Path, sidecar_factory: Callable[..., RunningSidecar]
) -> None:
    sidecar = sidecar_factory(private_registry_path, concurrency={"stream_idle_timeout_s": 0.5})
    release = threading.Event()
    started = time.monotonic()
    with pytest.raises(grpc.RpcError) as ended:
        next(_idle_stream(sidecar.address, release))
    release.set()
    assert ended.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert "no message for 0.5 s" in str(ended.value.details())
    assert time.monotonic() - started < 5
    assert _embed_one(sidecar.address) == 1


def test_a_stream_that_fails_early_leaves_no_reader_thread_behind(
    private_registry_path: Path, sidecar_factory: Callable[..., RunningSidecar]
) -> None:
    """Found by the fuzz test: a stream whose first message failed left a reader blocked for ever."""
    sidecar = sidecar_factory(private_registry_path)

    def readers() -> int:
        return sum(1 for thread in threading.enumerate() if thread.name == "stream-reader")

    before = readers()
    bad = embedding_pb2.EmbedStreamRequest(request=embedding_pb2.EmbedRequest(texts=[""]))
    good = embedding_pb2.EmbedStreamRequest(request=embedding_pb2.EmbedRequest(texts=["fine"]))
    with grpc.insecure_channel(sidecar.address) as channel:
        stub = embedding_pb2_grpc.EmbeddingServiceStub(channel)
        for _ in range(5):
            with pytest.raises(grpc.RpcError) as failed:
                list(stub.EmbedStream(iter([bad, good, good, good]), timeout=10))
            assert failed.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert _eventually(lambda: readers() == before)


def test_calls_beyond_the_servers_capacity_are_refused_at_once(
    private_registry_path: Path, sidecar_factory: Callable[..., RunningSidecar]
) -> None:
    """Item 5 at the gRPC level: 64 and 160 clients got DEADLINE_EXCEEDED and never RESOURCE_EXHAUSTED."""
    sidecar = sidecar_factory(
        private_registry_path, max_workers=2, concurrency={"max_concurrent_rpcs": 2, "max_streams": 1}
    )
    texts = ["a long enough text to keep the model busy for a moment " * 10] * 16

    def call(_: int) -> tuple[str, float]:
        started = time.monotonic()
        with grpc.insecure_channel(sidecar.address) as channel:
            stub = embedding_pb2_grpc.EmbeddingServiceStub(channel)
            try:
                stub.Embed(embedding_pb2.EmbedRequest(texts=texts), timeout=60)
                return "OK", time.monotonic() - started
            except grpc.RpcError as exc:
                return str(exc.code().name), time.monotonic() - started

    with ThreadPoolExecutor(12) as pool:
        outcomes = list(pool.map(call, range(12)))
    refused = [seconds for code, seconds in outcomes if code == "RESOURCE_EXHAUSTED"]
    assert {code for code, _ in outcomes} <= {"OK", "RESOURCE_EXHAUSTED"}
    assert refused and max(refused) < 2.0  # refused without waiting for a thread
    assert _embed_one(sidecar.address) == 1


@pytest.fixture
def guarded_sidecar(private_registry_path: Path, sidecar_factory: Callable[..., RunningSidecar]) -> RunningSidecar:
    """A sidecar with an admin token and a client token."""
    return sidecar_factory(private_registry_path, auth_token="admin-secret", client_token="client-secret")


def test_a_stream_without_a_token_is_unauthenticated_not_unimplemented(guarded_sidecar: RunningSidecar) -> None:
    """Item 9: the unary refusal answered streaming calls with UNIMPLEMENTED."""
    with grpc.insecure_channel(guarded_sidecar.address) as channel:
        call = embedding_pb2_grpc.EmbeddingServiceStub(channel).EmbedStream(iter(()), timeout=10)
        with pytest.raises(grpc.RpcError) as refused:
            list(call)
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_health_answers_probes_without_a_token(guarded_sidecar: RunningSidecar) -> None:
    # Kubernetes and load balancers send no metadata; health reveals one status and nothing else.
    assert _health(guarded_sidecar.address) == health_pb2.HealthCheckResponse.SERVING


def _call_with(address: str, path: str, metadata: list[tuple[str, str]]) -> grpc.StatusCode:
    """Call ``path`` with an empty request; the status code it ends with (OK included)."""
    service_name, method_name = path.strip("/").split("/")
    pool = descriptor_pool.Default()
    method = pool.FindServiceByName(service_name).FindMethodByName(method_name)
    request_class = message_factory.GetMessageClass(method.input_type)
    response_class = message_factory.GetMessageClass(method.output_type)
    kind = {
        (False, False): "unary_unary",
        (False, True): "unary_stream",
        (True, False): "stream_unary",
        (True, True): "stream_stream",
    }[(method.client_streaming, method.server_streaming)]
    with grpc.insecure_channel(address) as channel:
        stub = getattr(channel, kind)(
            path, request_serializer=request_class.SerializeToString, response_deserializer=response_class.FromString
        )
        request: Any = iter([request_class()]) if method.client_streaming else request_class()
        try:
            result = stub(request, timeout=10, metadata=metadata)
            if method.server_streaming:
                list(result)
        except grpc.RpcError as exc:
            return exc.code()  # type: ignore[no-any-return]
        return grpc.StatusCode.OK


def test_the_client_token_embeds_and_reads_but_cannot_change_what_is_served(guarded_sidecar: RunningSidecar) -> None:
    """Item 12 (and the security model): only the admin token may make administrative calls."""
    roles = rpc_roles()
    assert {path.rsplit("/", 1)[1] for path, role in roles.items() if role is Role.ADMIN} == set().union(
        *ADMIN_RPCS.values()
    )
    for path, role in roles.items():
        as_client = _call_with(guarded_sidecar.address, path, CLIENT)
        if role is Role.ADMIN:
            assert as_client == grpc.StatusCode.PERMISSION_DENIED, path
            assert _call_with(guarded_sidecar.address, path, ADMIN) != grpc.StatusCode.PERMISSION_DENIED, path
        else:
            assert as_client not in (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED), path
        assert _call_with(guarded_sidecar.address, path, [("authorization", "Bearer wrong")]) == (
            grpc.StatusCode.UNAUTHENTICATED
        ), path


def test_health_turns_not_serving_while_the_default_model_cannot_embed(
    private_registry_path: Path, sidecar_factory: Callable[..., RunningSidecar]
) -> None:
    """Item 12: the default model was deprecated, embeddings failed, and health still said SERVING."""
    sidecar = sidecar_factory(private_registry_path, auth_token="admin-secret", readiness_interval_s=0.2)
    with grpc.insecure_channel(sidecar.address) as channel:
        registry = registry_pb2_grpc.RegistryServiceStub(channel)
        registry.DeprecateModel(registry_pb2.DeprecateModelRequest(model_id="minilm-onnx"), timeout=10, metadata=ADMIN)
        assert _eventually(lambda: _health(sidecar.address) == health_pb2.HealthCheckResponse.NOT_SERVING)
        registry.DeprecateModel(
            registry_pb2.DeprecateModelRequest(model_id="minilm-onnx", undo=True), timeout=10, metadata=ADMIN
        )
        assert _eventually(lambda: _health(sidecar.address) == health_pb2.HealthCheckResponse.SERVING)
    assert _embed_one(sidecar.address, ADMIN) == 1


def _eventually(condition: Callable[[], bool], within_s: float = 5.0) -> bool:
    ends = time.monotonic() + within_s
    while time.monotonic() < ends:
        if condition():
            return True
        time.sleep(0.05)
    return condition()
