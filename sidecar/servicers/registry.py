"""RegistryService: the model registry over gRPC."""

from __future__ import annotations

import grpc

from rag_factory.models.embedding.records import ModelRecord
from rag_factory.models.embedding.registry import ModelRegistry
from rag_factory_contract.v1 import registry_pb2, registry_pb2_grpc
from sidecar import convert
from sidecar.errors import translate_all
from sidecar.trust import ImportPolicy, check_client_load_config


@translate_all
class RegistryServicer(registry_pb2_grpc.RegistryServiceServicer):
    """Registers, finds, aliases, deprecates and compares model versions."""

    def __init__(self, registry: ModelRegistry, imports: ImportPolicy) -> None:
        self._registry = registry
        self._imports = imports

    def _record(self, record: ModelRecord) -> registry_pb2.ModelRecord:
        aliases = self._registry.aliases(record.metadata.model_name)
        return convert.record_message(record, [alias for alias, target in aliases.items() if target == record.model_id])

    def RegisterModel(
        self, request: registry_pb2.RegisterModelRequest, context: grpc.ServicerContext
    ) -> registry_pb2.RegisterModelResponse:
        record = self._registry.register_model(
            convert.metadata_from_message(request.metadata),
            artifact_path=self._imports.check(request.artifact_path) if request.artifact_path else None,
            load_config=check_client_load_config(convert.struct_to_dict(request.load_config, "load_config")),
            metrics=dict(request.metrics),
        )
        return registry_pb2.RegisterModelResponse(record=self._record(record))

    def GetModel(
        self, request: registry_pb2.GetModelRequest, context: grpc.ServicerContext
    ) -> registry_pb2.GetModelResponse:
        return registry_pb2.GetModelResponse(
            record=self._record(self._registry.resolve(request.model, allow_deprecated=True))
        )

    def ListModels(
        self, request: registry_pb2.ListModelsRequest, context: grpc.ServicerContext
    ) -> registry_pb2.ListModelsResponse:
        records = self._registry.list_records(
            domain=request.domain or None,
            format=convert.format_from_message(request.format),
            tags=list(request.tags) or None,
            name=request.name or None,
            text=request.text or None,
            version_range=request.version_range or None,
            include_deprecated=not request.exclude_deprecated,
        )
        return registry_pb2.ListModelsResponse(records=[self._record(r) for r in records])

    def UpdateMetrics(
        self, request: registry_pb2.UpdateMetricsRequest, context: grpc.ServicerContext
    ) -> registry_pb2.UpdateMetricsResponse:
        self._registry.update_metrics(request.model_id, dict(request.metrics))
        return registry_pb2.UpdateMetricsResponse(record=self._record(self._registry.get_record(request.model_id)))

    def DeleteModel(
        self, request: registry_pb2.DeleteModelRequest, context: grpc.ServicerContext
    ) -> registry_pb2.DeleteModelResponse:
        return registry_pb2.DeleteModelResponse(deleted=self._registry.delete_model(request.model_id))

    def SetAlias(
        self, request: registry_pb2.SetAliasRequest, context: grpc.ServicerContext
    ) -> registry_pb2.SetAliasResponse:
        record = self._registry.set_alias(request.model_name, request.alias, request.target, force=request.force)
        return registry_pb2.SetAliasResponse(record=self._record(record))

    def RollbackAlias(
        self, request: registry_pb2.RollbackAliasRequest, context: grpc.ServicerContext
    ) -> registry_pb2.RollbackAliasResponse:
        record = self._registry.rollback(request.model_name, request.alias, force=request.force)
        return registry_pb2.RollbackAliasResponse(record=self._record(record))

    def DeprecateModel(
        self, request: registry_pb2.DeprecateModelRequest, context: grpc.ServicerContext
    ) -> registry_pb2.DeprecateModelResponse:
        if request.undo:
            record = self._registry.undeprecate(request.model_id)
        else:
            record = self._registry.deprecate(request.model_id, request.reason)
        return registry_pb2.DeprecateModelResponse(record=self._record(record))

    def CompareModels(
        self, request: registry_pb2.CompareModelsRequest, context: grpc.ServicerContext
    ) -> registry_pb2.CompareModelsResponse:
        return convert.comparison_message(self._registry.compare(request.model_a, request.model_b))

    def GetLineage(
        self, request: registry_pb2.GetLineageRequest, context: grpc.ServicerContext
    ) -> registry_pb2.GetLineageResponse:
        return registry_pb2.GetLineageResponse(
            ancestors=self._registry.ancestors(request.model_id),
            descendants=self._registry.descendants(request.model_id),
        )
