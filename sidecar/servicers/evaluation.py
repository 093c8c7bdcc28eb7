"""EvaluationService: evaluations streamed as progress, and paired comparisons of two models."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator

import grpc

from rag_factory.errors import DeadlineExceededError
from rag_factory.models.evaluation.comparison import compare_models
from rag_factory.models.evaluation.evaluator import evaluate
from rag_factory.models.evaluation.options import EvaluationOptions
from rag_factory.models.evaluation.progress import EvaluationProgress
from rag_factory.models.evaluation.results import EvaluationReport
from rag_factory.serving.engine import EmbeddingEngine
from rag_factory_contract.v1 import evaluation_pb2, evaluation_pb2_grpc
from sidecar import convert
from sidecar.errors import translate_all
from sidecar.trust import JobPathPolicy

_DONE = object()
# How often the streaming thread looks whether its client is still there while the evaluation runs.
_POLL_S = 0.5


@translate_all
class EvaluationServicer(evaluation_pb2_grpc.EvaluationServiceServicer):
    """Runs evaluations with the engine's registry and model cache.

    Args:
        engine: The serving engine (its registry, model cache and plugins).
        paths: Which datasets and model folders a client may name; by default only the bundled
            datasets, and models from the registry or the hub's local copies.
    """

    def __init__(self, engine: EmbeddingEngine, paths: JobPathPolicy | None = None) -> None:
        self._engine = engine
        self._paths = paths or JobPathPolicy.from_settings((), "", str(engine.registry.path))

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
        model = self._paths.model("model", request.model)
        data_dir = self._paths.dataset("data_dir", request.data_dir)
        options = self._options(request.split)
        # The evaluation runs in a thread so its progress callbacks can be streamed as they happen.
        updates: queue.Queue[object] = queue.Queue()

        def on_progress(progress: EvaluationProgress) -> None:
            # Stops an evaluation whose client left or ran out of time at its next progress report.
            if not context.is_active():
                raise DeadlineExceededError("the client went away; evaluation stopped")
            updates.put(progress)

        def run() -> None:
            try:
                report = evaluate(
                    model, data_dir, options, on_progress=on_progress, allow_dangling_qrels=request.allow_dangling_qrels
                )
                updates.put(report)
            except Exception as exc:  # re-raised in the RPC thread, where errors are mapped
                updates.put(exc)
            finally:
                updates.put(_DONE)

        threading.Thread(target=run, name="evaluation", daemon=True).start()
        while context.is_active():
            try:
                item = updates.get(timeout=_POLL_S)
            except queue.Empty:
                continue
            if item is _DONE:
                return
            if isinstance(item, Exception):
                raise item
            if isinstance(item, EvaluationProgress):
                yield convert.evaluation_progress_message(item)
            elif isinstance(item, EvaluationReport):
                yield convert.evaluation_result_message(item)

    def CompareRetrieval(
        self, request: evaluation_pb2.CompareRetrievalRequest, context: grpc.ServicerContext
    ) -> evaluation_pb2.CompareRetrievalResponse:
        model_a = self._paths.model("model_a", request.model_a)
        model_b = self._paths.model("model_b", request.model_b)
        data_dir = self._paths.dataset("data_dir", request.data_dir)
        report = compare_models(model_a, model_b, data_dir, self._options(request.split))
        return convert.comparison_retrieval_message(report)
