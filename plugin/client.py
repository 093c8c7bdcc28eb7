"""A thin gRPC client of the sidecar: sync, async and batched embedding over one request builder."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from types import TracebackType
from typing import Any, Literal, TypeVar

import grpc
import grpc.aio
from google.protobuf.message import Message

from plugin.errors import error_from_rpc
from plugin.results import EmbedResult, concat_results, result_from_response
from rag_factory.errors import InvalidArgumentError
from rag_factory_contract.v1 import embedding_pb2, model_pb2

Encoding = Literal["packed", "repeated"]

# Documented limits of the contract (protos/rag_factory/v1/embedding.proto).
MAX_BATCH_TEXTS = 256
MAX_MESSAGE_BYTES = 16 * 1024 * 1024

_ENCODINGS: dict[Encoding, embedding_pb2.VectorEncoding] = {
    "packed": embedding_pb2.VECTOR_ENCODING_PACKED_FLOAT32,
    "repeated": embedding_pb2.VECTOR_ENCODING_REPEATED_FLOAT,
}
_CHANNEL_OPTIONS = [
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
]

T = TypeVar("T")
R = TypeVar("R", bound=Message)


def method_path(file: Any, service: str, method: str) -> str:
    """``/package.Service/Method`` of an RPC of the contract."""
    # Looked up in the generated descriptors, so a renamed RPC fails at import rather than as UNIMPLEMENTED.
    descriptor = file.services_by_name[service].methods_by_name[method]
    return f"/{descriptor.containing_service.full_name}/{descriptor.name}"


_EMBED = method_path(embedding_pb2.DESCRIPTOR, "EmbeddingService", "Embed")
_GET_SERVER_INFO = method_path(model_pb2.DESCRIPTOR, "ModelService", "GetServerInfo")
_GET_MODEL_INFO = method_path(model_pb2.DESCRIPTOR, "ModelService", "GetModelInfo")
_GET_MODEL_READINESS = method_path(model_pb2.DESCRIPTOR, "ModelService", "GetModelReadiness")


def unary(channel: Any, path: str, request_type: Any, response_type: Any) -> Any:
    # Built from the typed message classes rather than the generated *_pb2_grpc stubs, which carry no type
    # annotations; works for sync and grpc.aio channels alike.
    return channel.unary_unary(
        path, request_serializer=request_type.SerializeToString, response_deserializer=response_type.FromString
    )


def _check_encoding(encoding: str) -> Encoding:
    if encoding not in _ENCODINGS:
        raise InvalidArgumentError(f"unknown encoding {encoding!r}; choose one of: {', '.join(_ENCODINGS)}")
    return encoding  # type: ignore[return-value]


def build_embed_request(
    texts: Sequence[str],
    *,
    model: str = "",
    routing_key: str = "",
    domain: str = "",
    request_id: str = "",
    encoding: Encoding = "packed",
    allow_fallback: bool = False,
    dimensions: int | None = None,
) -> embedding_pb2.EmbedRequest:
    """The one place an ``EmbedRequest`` is made, for the sync, async and batched paths alike.

    Limits (batch size, empty or over-long texts) are left to the sidecar, which owns them and answers
    INVALID_ARGUMENT; only mistakes no server could catch are checked here.

    Args:
        texts: The texts to embed.
        model: Model reference ("" for the server's default).
        routing_key: Stable key that pins an A/B arm ("" for random routing).
        domain: Domain passed to the sidecar's preprocessing hooks.
        request_id: Id to report outcomes against ("" lets the server make one).
        encoding: "packed" (float32 bytes, fastest) or "repeated" (one float list per text).
        allow_fallback: Let the sidecar's default model answer when the requested model fails. Its
            vectors are of another vector space: search the index of ``served_by.model_id``. False
            (the default) makes such a failure raise ``FallbackRefusedError`` instead.
        dimensions: Matryoshka truncation: the first ``dimensions`` values of each vector, scaled back to
            unit length (None: the model's full dimension). Above the model's dimension the sidecar
            answers INVALID_ARGUMENT.

    Raises:
        InvalidArgumentError: ``texts`` is a single string, the encoding is unknown, or ``dimensions`` < 1.
    """
    if isinstance(texts, str):
        # A str is a Sequence[str] too; embedding it would embed each character.
        raise InvalidArgumentError("texts must be a list of strings, not one string; wrap it as [text]")
    if dimensions is not None and dimensions < 1:
        # The wire field is unsigned: a negative value cannot even be sent.
        raise InvalidArgumentError(f"dimensions must be at least 1, got {dimensions}; leave it None for all of them")
    return embedding_pb2.EmbedRequest(
        texts=list(texts),
        model=model,
        routing_key=routing_key,
        domain=domain,
        request_id=request_id,
        encoding=_ENCODINGS[_check_encoding(encoding)],
        allow_fallback=allow_fallback,
        dimensions=dimensions,  # None leaves the optional field unset: the model's full dimension
    )


def _batches(texts: Sequence[str], batch_size: int) -> list[Sequence[str]]:
    if isinstance(texts, str):
        raise InvalidArgumentError("texts must be a list of strings, not one string; wrap it as [text]")
    if not 1 <= batch_size <= MAX_BATCH_TEXTS:
        raise InvalidArgumentError(f"batch_size must be between 1 and {MAX_BATCH_TEXTS}, got {batch_size}")
    # An empty input still makes one request so the sidecar reports the empty batch like any other call.
    return [texts[start : start + batch_size] for start in range(0, len(texts), batch_size)] or [texts]


class RagFactoryClient:
    """Client of one sidecar. Channels open on first use, never at construction.

    Example:
        >>> client = RagFactoryClient("127.0.0.1:50051")
        >>> client.embed(["aspirin lowers fever"]).vectors.shape
        (1, 384)
    """

    def __init__(
        self,
        address: str,
        *,
        timeout_s: float = 10.0,
        encoding: Encoding = "packed",
        credentials: grpc.ChannelCredentials | None = None,
        token: str | None = None,
        metadata: Sequence[tuple[str, str]] = (),
    ) -> None:
        """Describe the connection; nothing is opened yet.

        Args:
            address: "HOST:PORT" of the sidecar.
            timeout_s: Deadline of each call unless the call sets its own ``timeout``.
            encoding: Default vector encoding of embedding calls.
            credentials: TLS channel credentials; plaintext when None.
            token: Bearer token sent as ``authorization`` metadata when the sidecar requires one.
            metadata: Extra metadata sent with every call.

        Raises:
            InvalidArgumentError: An empty address, a non-positive timeout or an unknown encoding.
        """
        if not address:
            raise InvalidArgumentError("address must be 'HOST:PORT' of a running sidecar, got ''")
        if timeout_s <= 0:
            raise InvalidArgumentError(f"timeout_s must be positive, got {timeout_s}")
        self.address = address
        self.timeout_s = timeout_s
        self.encoding = _check_encoding(encoding)
        self._credentials = credentials
        auth = (("authorization", f"Bearer {token}"),) if token else ()
        self._metadata: tuple[tuple[str, str], ...] = tuple(metadata) + auth
        self._lock = threading.Lock()
        self._channel: grpc.Channel | None = None
        # grpc.aio channels belong to the event loop that made them; keep one per loop.
        self._aio_channels: dict[asyncio.AbstractEventLoop, grpc.aio.Channel] = {}

    # -- channels ---------------------------------------------------------------------------------

    def _sync_channel(self) -> grpc.Channel:
        with self._lock:
            if self._channel is None:
                if self._credentials is None:
                    self._channel = grpc.insecure_channel(self.address, options=_CHANNEL_OPTIONS)
                else:
                    self._channel = grpc.secure_channel(self.address, self._credentials, options=_CHANNEL_OPTIONS)
            return self._channel

    def _aio_channel(self) -> grpc.aio.Channel:
        loop = asyncio.get_running_loop()
        with self._lock:
            for old_loop in [known for known in self._aio_channels if known.is_closed()]:
                # Its loop is gone, so the channel can no longer be closed cleanly; just drop it.
                del self._aio_channels[old_loop]
            if loop not in self._aio_channels:
                if self._credentials is None:
                    channel = grpc.aio.insecure_channel(self.address, options=_CHANNEL_OPTIONS)
                else:
                    channel = grpc.aio.secure_channel(self.address, self._credentials, options=_CHANNEL_OPTIONS)
                self._aio_channels[loop] = channel
            return self._aio_channels[loop]

    def _call(self, rpc: Callable[[], T]) -> T:
        try:
            return rpc()
        except grpc.RpcError as exc:
            raise error_from_rpc(exc, address=self.address) from exc

    async def _acall(self, rpc: Callable[[], Awaitable[T]]) -> T:
        try:
            return await rpc()
        except grpc.RpcError as exc:
            raise error_from_rpc(exc, address=self.address) from exc

    def _timeout(self, timeout: float | None) -> float:
        return self.timeout_s if timeout is None else timeout

    # -- embedding --------------------------------------------------------------------------------

    def embed(
        self,
        texts: Sequence[str],
        *,
        model: str = "",
        routing_key: str = "",
        domain: str = "",
        request_id: str = "",
        encoding: Encoding | None = None,
        timeout: float | None = None,
        allow_fallback: bool = False,
        dimensions: int | None = None,
    ) -> EmbedResult:
        """Embed one batch (at most 256 texts) in one request.

        Args:
            texts: The texts; see :func:`build_embed_request` for the other arguments.
            model: Model reference ("" for the server's default).
            routing_key: Stable key that pins an A/B arm.
            domain: Domain passed to preprocessing hooks.
            request_id: Id to report outcomes against.
            encoding: Overrides the client's default encoding.
            timeout: Deadline in seconds; the client's ``timeout_s`` when None.
            allow_fallback: Accept the default model's vectors when the requested model fails
                (``served_by.fallback`` is then true and ``served_by.model_id`` names the index to search).
            dimensions: Keep the first ``dimensions`` values of each vector, re-normalised (None: all).

        Returns:
            The vectors and the model that served them.

        Raises:
            RagFactoryError: The core error the sidecar raised (``InvalidArgumentError`` for bad input,
                ``ModelNotFoundError``, ``ModelDeprecatedError``, ``FallbackRefusedError`` when the model
                failed and ``allow_fallback`` is False, ...), or ``UnavailableError`` when the sidecar
                cannot be reached or the deadline passes.
        """
        request = build_embed_request(
            texts,
            model=model,
            routing_key=routing_key,
            domain=domain,
            request_id=request_id,
            encoding=encoding or self.encoding,
            allow_fallback=allow_fallback,
            dimensions=dimensions,
        )
        rpc = unary(self._sync_channel(), _EMBED, embedding_pb2.EmbedRequest, embedding_pb2.EmbedResponse)
        started = time.perf_counter()
        response: embedding_pb2.EmbedResponse = self._call(
            lambda: rpc(request, timeout=self._timeout(timeout), metadata=self._metadata)
        )
        return result_from_response(response, (time.perf_counter() - started) * 1000)

    async def aembed(
        self,
        texts: Sequence[str],
        *,
        model: str = "",
        routing_key: str = "",
        domain: str = "",
        request_id: str = "",
        encoding: Encoding | None = None,
        timeout: float | None = None,
        allow_fallback: bool = False,
        dimensions: int | None = None,
    ) -> EmbedResult:
        """Async twin of :meth:`embed` over a ``grpc.aio`` channel; same arguments, result and errors."""
        request = build_embed_request(
            texts,
            model=model,
            routing_key=routing_key,
            domain=domain,
            request_id=request_id,
            encoding=encoding or self.encoding,
            allow_fallback=allow_fallback,
            dimensions=dimensions,
        )
        rpc = unary(self._aio_channel(), _EMBED, embedding_pb2.EmbedRequest, embedding_pb2.EmbedResponse)
        started = time.perf_counter()
        response: embedding_pb2.EmbedResponse = await self._acall(
            lambda: rpc(request, timeout=self._timeout(timeout), metadata=self._metadata)
        )
        return result_from_response(response, (time.perf_counter() - started) * 1000)

    def embed_batched(
        self,
        texts: Sequence[str],
        *,
        batch_size: int = MAX_BATCH_TEXTS,
        model: str = "",
        routing_key: str = "",
        domain: str = "",
        encoding: Encoding | None = None,
        timeout: float | None = None,
        allow_fallback: bool = False,
        dimensions: int | None = None,
    ) -> EmbedResult:
        """Embed any number of texts in requests of at most ``batch_size`` texts.

        Each request gets its own deadline. Arguments are those of :meth:`embed`.

        Raises:
            InvalidArgumentError: ``batch_size`` is outside 1..256 (the server's limit).
            FailedPreconditionError: Batches were served by different models (an unpinned A/B test).
            RagFactoryError: Any error of :meth:`embed`.
        """
        started = time.perf_counter()
        parts = [
            self.embed(
                batch,
                model=model,
                routing_key=routing_key,
                domain=domain,
                encoding=encoding,
                timeout=timeout,
                allow_fallback=allow_fallback,
                dimensions=dimensions,
            )
            for batch in _batches(texts, batch_size)
        ]
        return concat_results(parts, (time.perf_counter() - started) * 1000)

    async def aembed_batched(
        self,
        texts: Sequence[str],
        *,
        batch_size: int = MAX_BATCH_TEXTS,
        model: str = "",
        routing_key: str = "",
        domain: str = "",
        encoding: Encoding | None = None,
        timeout: float | None = None,
        allow_fallback: bool = False,
        dimensions: int | None = None,
    ) -> EmbedResult:
        """Async twin of :meth:`embed_batched`; the batches are sent concurrently."""
        started = time.perf_counter()
        parts = await asyncio.gather(
            *(
                self.aembed(
                    batch,
                    model=model,
                    routing_key=routing_key,
                    domain=domain,
                    encoding=encoding,
                    timeout=timeout,
                    allow_fallback=allow_fallback,
                    dimensions=dimensions,
                )
                for batch in _batches(texts, batch_size)
            )
        )
        return concat_results(parts, (time.perf_counter() - started) * 1000)

    # -- models -----------------------------------------------------------------------------------

    def server_info(self, *, timeout: float | None = None) -> model_pb2.GetServerInfoResponse:
        """The server's version, default model and request limits."""
        rpc = unary(
            self._sync_channel(), _GET_SERVER_INFO, model_pb2.GetServerInfoRequest, model_pb2.GetServerInfoResponse
        )
        request = model_pb2.GetServerInfoRequest()
        response: model_pb2.GetServerInfoResponse = self._call(
            lambda: rpc(request, timeout=self._timeout(timeout), metadata=self._metadata)
        )
        return response

    def model_info(self, model: str = "", *, timeout: float | None = None) -> model_pb2.ModelInfo:
        """How the server would serve a model reference ("" for the default model).

        Raises:
            ModelNotFoundError: The reference is not registered.
        """
        rpc = unary(
            self._sync_channel(), _GET_MODEL_INFO, model_pb2.GetModelInfoRequest, model_pb2.GetModelInfoResponse
        )
        request = model_pb2.GetModelInfoRequest(model=model)
        response: model_pb2.GetModelInfoResponse = self._call(
            lambda: rpc(request, timeout=self._timeout(timeout), metadata=self._metadata)
        )
        return response.info

    def readiness(
        self, model: str = "", *, load: bool = False, timeout: float | None = None
    ) -> model_pb2.GetModelReadinessResponse:
        """Whether a model is loaded; with ``load=True`` the server loads it first (give it time)."""
        rpc = unary(
            self._sync_channel(),
            _GET_MODEL_READINESS,
            model_pb2.GetModelReadinessRequest,
            model_pb2.GetModelReadinessResponse,
        )
        request = model_pb2.GetModelReadinessRequest(model=model, load=load)
        response: model_pb2.GetModelReadinessResponse = self._call(
            lambda: rpc(request, timeout=self._timeout(timeout), metadata=self._metadata)
        )
        return response

    def invoke(self, path: str, request: Message, response_type: type[R], *, timeout: float | None = None) -> R:
        """Call any unary RPC of the contract (see :func:`method_path`), errors mapped like every other call."""
        rpc = unary(self._sync_channel(), path, type(request), response_type)
        response: R = self._call(lambda: rpc(request, timeout=self._timeout(timeout), metadata=self._metadata))
        return response

    # -- lifetime ---------------------------------------------------------------------------------

    def close(self) -> None:
        """Close the sync channel; async channels are closed by :meth:`aclose` from their own loop."""
        with self._lock:
            channel, self._channel = self._channel, None
        if channel is not None:
            channel.close()

    async def aclose(self) -> None:
        """Close the async channel of the running loop, and the sync channel."""
        with self._lock:
            channel = self._aio_channels.pop(asyncio.get_running_loop(), None)
        if channel is not None:
            await channel.close()
        self.close()

    def __enter__(self) -> RagFactoryClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RagFactoryClient({self.address!r}, timeout_s={self.timeout_s}, encoding={self.encoding!r})"
