"""EvaluationService: evaluations streamed as progress, and paired comparisons of two models."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator

import grpc

from rag_factory.models.evaluation.comparison import compare_models
from rag_factory.models.evaluation.evaluator import evaluate
from rag_factory.models.evaluation.options import EvaluationOptions
from rag_factory.models.evaluation.progress import EvaluationProgress
from rag_factory.models.evaluation.results import EvaluationReport
from rag_factory.serving.engine import EmbeddingEngine
from rag_factory_contract.v1 import evaluation_pb2, evaluation_pb2_grpc
from sidecar import convert
from sidecar.errors import translate_all

_DONE = object()


@translate_all
class EvaluationServicer(evaluation_pb2_grpc.EvaluationServiceServicer):
    """Runs evaluations with the engine's registry and model cache."""

    def __init__(self, engine: EmbeddingEngine) -> None:
        self._engine = engine

    def _options(self, split: str) -> EvaluationOptions:
        # The engine's registry, model cache and plugins; corpus vectors cached beside its models.
        engine = self._engine
        return EvaluationOptions(
            split=split or "test", registry=engine.registry, loader=engine.loader,
            cache_dir=engine.loader.cache_dir / "embeddings", plugin_manager=engine.hooks,
        )  # fmt: skip

    def Evaluate(
        self, request: evaluation_pb2.EvaluateRequest, context: grpc.ServicerContext
    ) -> Iterator[evaluation_pb2.EvaluateResponse]:
        # The evaluation runs in a thread so its progress callbacks can be streamed as they happen.
        updates: queue.Queue[object] = queue.Queue()

        def run() -> None:
            try:
                report = evaluate(
                    request.model, request.data_dir, self._options(request.split), on_progress=updates.put,
                    allow_dangling_qrels=request.allow_dangling_qrels,
                )  # fmt: skip
                updates.put(report)
            except Exception as exc:  # re-raised in the RPC thread, where errors are mapped
                updates.put(exc)
            finally:
                updates.put(_DONE)

        threading.Thread(target=run, name="evaluation", daemon=True).start()
        while (item := updates.get()) is not _DONE:
            if isinstance(item, Exception):
                raise item
            if isinstance(item, EvaluationProgress):
                yield convert.evaluation_progress_message(item)
            elif isinstance(item, EvaluationReport):
                yield convert.evaluation_result_message(item)

    def CompareRetrieval(
        self, request: evaluation_pb2.CompareRetrievalRequest, context: grpc.ServicerContext
    ) -> evaluation_pb2.CompareRetrievalResponse:
        report = compare_models(request.model_a, request.model_b, request.data_dir, self._options(request.split))
        return convert.comparison_retrieval_message(report)
