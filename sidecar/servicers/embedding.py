"""EmbeddingService: unary and streaming embedding over the engine."""

from __future__ import annotations

from collections.abc import Iterator

import grpc

from rag_factory.serving.engine import EmbeddingEngine
from rag_factory_contract.v1 import embedding_pb2, embedding_pb2_grpc
from sidecar import convert
from sidecar.errors import translate_all


@translate_all
class EmbeddingServicer(embedding_pb2_grpc.EmbeddingServiceServicer):
    """Embeds texts with the engine it is given."""

    def __init__(self, engine: EmbeddingEngine) -> None:
        self._engine = engine

    def Embed(self, request: embedding_pb2.EmbedRequest, context: grpc.ServicerContext) -> embedding_pb2.EmbedResponse:
        outcome = self._engine.embed(convert.embed_call(request, context.time_remaining()))
        return convert.embed_response(outcome, request.encoding)

    def EmbedStream(
        self, request_iterator: Iterator[embedding_pb2.EmbedStreamRequest], context: grpc.ServicerContext
    ) -> Iterator[embedding_pb2.EmbedStreamResponse]:
        for item in request_iterator:
            outcome = self._engine.embed(convert.embed_call(item.request, context.time_remaining()))
            yield embedding_pb2.EmbedStreamResponse(response=convert.embed_response(outcome, item.request.encoding))
