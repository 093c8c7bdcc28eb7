"""EmbeddingService: unary and streaming embedding over the engine."""

from __future__ import annotations

from collections.abc import Iterator

import grpc

from rag_factory.errors import RagFactoryError
from rag_factory.serving.engine import Cancellation, EmbedCall, EmbeddingEngine
from rag_factory_contract.v1 import embedding_pb2, embedding_pb2_grpc
from sidecar import convert
from sidecar.errors import translate_all


@translate_all
class EmbeddingServicer(embedding_pb2_grpc.EmbeddingServiceServicer):
    """Embeds texts with the engine it is given."""

    def __init__(self, engine: EmbeddingEngine) -> None:
        self._engine = engine

    def Embed(self, request: embedding_pb2.EmbedRequest, context: grpc.ServicerContext) -> embedding_pb2.EmbedResponse:
        call = _converted(self._engine, request, context.time_remaining())
        outcome = self._engine.embed(call, cancellation=_cancelled_with(context))
        return convert.embed_response(outcome, request.encoding)

    def EmbedStream(
        self, request_iterator: Iterator[embedding_pb2.EmbedStreamRequest], context: grpc.ServicerContext
    ) -> Iterator[embedding_pb2.EmbedStreamResponse]:
        cancellation = _cancelled_with(context)
        for item in request_iterator:
            call = _converted(self._engine, item.request, context.time_remaining())
            outcome = self._engine.embed(call, cancellation=cancellation)
            yield embedding_pb2.EmbedStreamResponse(response=convert.embed_response(outcome, item.request.encoding))


def _converted(engine: EmbeddingEngine, request: embedding_pb2.EmbedRequest, timeout_s: float | None) -> EmbedCall:
    """``convert.embed_call``; a request it refuses is counted by the engine, which never sees it."""
    try:
        return convert.embed_call(request, timeout_s)
    except Exception as exc:
        reason = exc.reason if isinstance(exc, RagFactoryError) else "INTERNAL"  # as sidecar/errors.py answers
        engine.refused(reason, EmbedCall(texts=list(request.texts), model=request.model, request_id=request.request_id))
        raise


def _cancelled_with(context: grpc.ServicerContext) -> Cancellation:
    """A cancellation that fires when the call ends, so work of a client that left is never computed.

    gRPC runs the callback after a normal end too, when nothing is queued any more (harmless).
    """
    cancellation = Cancellation()
    if not context.add_callback(cancellation.cancel):  # the call has already ended
        cancellation.cancel()
    return cancellation
