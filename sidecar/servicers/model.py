"""ModelService: server info, per-model info and readiness, loaded models."""

from __future__ import annotations

import grpc

from rag_factory.serving.engine import EmbeddingEngine
from rag_factory_contract.v1 import model_pb2, model_pb2_grpc
from sidecar import convert
from sidecar.errors import translate_all

_STATES = {
    "not_loaded": model_pb2.READINESS_STATE_NOT_LOADED,
    "loading": model_pb2.READINESS_STATE_LOADING,
    "ready": model_pb2.READINESS_STATE_READY,
    "failed": model_pb2.READINESS_STATE_FAILED,
}


@translate_all
class ModelServicer(model_pb2_grpc.ModelServiceServicer):
    """Describes the server and its models."""

    def __init__(self, engine: EmbeddingEngine, *, server_version: str, ab_testing_enabled: bool) -> None:
        self._engine = engine
        self._server_version = server_version
        self._ab_enabled = ab_testing_enabled

    def GetServerInfo(
        self, request: model_pb2.GetServerInfoRequest, context: grpc.ServicerContext
    ) -> model_pb2.GetServerInfoResponse:
        limits = self._engine.limits
        return model_pb2.GetServerInfoResponse(
            server_version=self._server_version,
            default_model=self._engine.default_model,
            limits=model_pb2.Limits(
                max_batch_texts=limits.max_batch_texts,
                max_text_chars=limits.max_text_chars,
                max_message_bytes=limits.max_message_bytes,
            ),
            ab_testing_enabled=self._ab_enabled,
        )

    def GetModelInfo(
        self, request: model_pb2.GetModelInfoRequest, context: grpc.ServicerContext
    ) -> model_pb2.GetModelInfoResponse:
        record, state, _ = self._engine.readiness(request.model)
        loaded = dict(self._engine.loaded()).get(record.model_id) if state == "ready" else None
        return model_pb2.GetModelInfoResponse(info=convert.model_info(record, loaded))

    def GetModelReadiness(
        self, request: model_pb2.GetModelReadinessRequest, context: grpc.ServicerContext
    ) -> model_pb2.GetModelReadinessResponse:
        record, state, message = self._engine.readiness(request.model, load=request.load)
        return model_pb2.GetModelReadinessResponse(model_id=record.model_id, state=_STATES[state], message=message)

    def ListLoadedModels(
        self, request: model_pb2.ListLoadedModelsRequest, context: grpc.ServicerContext
    ) -> model_pb2.ListLoadedModelsResponse:
        # The models and the bytes come from one look at the loader's cache, which owns them.
        loaded, cache = self._engine.loaded_snapshot()
        # A model deleted from the registry stays loaded until the cache lets it go: it is not listed.
        records = [(self._engine.registry.find_record(model_id), model) for model_id, model in loaded]
        models = [convert.model_info(record, model) for record, model in records if record is not None]
        return model_pb2.ListLoadedModelsResponse(
            models=models, cache_used_bytes=cache.used_bytes, cache_budget_bytes=cache.budget_bytes
        )
