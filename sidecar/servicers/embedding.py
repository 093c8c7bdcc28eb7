"""EmbeddingService: unary and streaming embedding over the engine."""

from __future__ import annotations

from collections.abc import Iterator

import grpc

from rag_factory.serving.engine import Cancellation, EmbeddingEngine
from rag_factory_contract.v1 import embedding_pb2, embedding_pb2_grpc
from sidecar import convert
from sidecar.errors import translate_all


@translate_all
class EmbeddingServicer(embedding_pb2_grpc.EmbeddingServiceServicer):
    """Embeds texts with the engine it is given."""

    def __init__(self, engine: EmbeddingEngine) -> None:
        self._engine = engine

    def Embed(self, request: embedding_pb2.EmbedRequest, context: grpc.ServicerContext) -> embedding_pb2.EmbedResponse:
        outcome = self._engine.embed(
            convert.embed_call(request, context.time_remaining()), cancellation=_cancelled_with(context)
        )
        return convert.embed_response(outcome, request.encoding)

    def EmbedStream(
        self, request_iterator: Iterator[embedding_pb2.EmbedStreamRequest], context: grpc.ServicerContext
    ) -> Iterator[embedding_pb2.EmbedStreamResponse]:
        cancellation = _cancelled_with(context)
        for item in request_iterator:
            outcome = self._engine.embed(
                convert.embed_call(item.request, context.time_remaining()), cancellation=cancellation
            )
            yield embedding_pb2.EmbedStreamResponse(response=convert.embed_response(outcome, item.request.encoding))


def _cancelled_with(context: grpc.ServicerContext) -> Cancellation:
    """A cancellation that fires when the call ends, so work of a client that left is never computed.

    gRPC runs the callback after a normal end too, when nothing is queued any more (harmless).
    """
    cancellation = Cancellation()
    if not context.add_callback(cancellation.cancel):  # the call has already ended
        cancellation.cancel()
    return cancellation
