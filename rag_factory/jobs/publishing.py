"""Publish a fine-tuning result: register it, and share its corpus vectors with evaluation's cache.

``fine_tune`` trains, exports and evaluates; it registers nothing. What the command line, the demo
and the ``fine_tune`` job want is the whole run, so they call :func:`fine_tune_and_publish`, which
composes the three steps and keeps the event stream of one run: ``registered`` comes before the
final ``done``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from rag_factory.errors import RagFactoryError
from rag_factory.models.embedding.loader import CustomModelLoader
from rag_factory.models.embedding.registry import ModelRegistry
from rag_factory.models.evaluation.corpus_vectors import store_corpus_vectors
from rag_factory.models.training.config import FineTuneConfig
from rag_factory.models.training.events import TrainingEvent, TrainingEventSink
from rag_factory.models.training.registration import register_fine_tuned
from rag_factory.models.training.result import FineTuneResult, RunCorpusVectors
from rag_factory.models.training.trainer import fine_tune

logger = logging.getLogger(__name__)


def fine_tune_and_publish(
    config: FineTuneConfig,
    *,
    on_event: TrainingEventSink | None = None,
    cancel: threading.Event | None = None,
    exclude_ids: Sequence[str] | None = None,
) -> FineTuneResult:
    """Fine-tune (see ``fine_tune``), then publish the result as its config asks (see :func:`publish_result`).

    Args:
        config: The run.
        on_event: Receives the run's events, then ``registered``, then ``done``.
        cancel: When set, training stops at the next step and ``TrainingCancelledError`` is raised;
            nothing is registered.
        exclude_ids: Query ids to leave out of training and validation.

    Returns:
        The result, with ``model_id`` and ``model_ref`` set when it was registered.
    """
    started = time.perf_counter()
    emit: TrainingEventSink = on_event or (lambda event: None)
    finished: list[TrainingEvent] = []

    def relay(event: TrainingEvent) -> None:
        # "done" ends the stream, so it waits until the result is published.
        if event.kind == "done":
            finished.append(event)
        else:
            emit(event)

    result = fine_tune(config, on_event=relay, cancel=cancel, exclude_ids=exclude_ids)
    publish_result(result, on_event=emit)
    result.total_seconds = time.perf_counter() - started
    for event in finished:
        emit(event)
    return result


def publish_result(result: FineTuneResult, *, on_event: TrainingEventSink | None = None) -> None:
    """Register ``result`` and share its corpus vectors, as the run's config asks.

    The result is registered (as the next minor version, alias ``candidate``) when the config names
    a registry and ``register_result`` is on; ``result.model_id`` and ``model_ref`` are then set.
    With ``embedding_cache_dir`` set, the corpus vectors the run computed for the base and for the
    registered result are stored there, so that evaluating either skips embedding the corpus.

    Args:
        result: What ``fine_tune`` returned.
        on_event: Receives ``registered``.
    """
    if result.inputs is None:
        return
    config, base = result.inputs.config, result.inputs.base_record
    if config.registry_path is None or not config.register_result or base is None:
        if config.embedding_cache_dir is not None:
            logger.info("no corpus vectors shared: the result was not registered, so no cache key names it")
        return
    with ModelRegistry(config.registry_path) as registry:
        record = register_fine_tuned(registry, result)
        result.model_id, result.model_ref = record.model_id, record.ref
        if on_event is not None:
            on_event(TrainingEvent(kind="registered", message=f"registered {record.ref} as candidate"))
        if config.embedding_cache_dir is None:
            return
        if result.corpus_vectors is None:
            logger.info("no corpus vectors shared: without a BEIR test split the result never embedded the corpus")
            return
        models = {base.model_id: result.corpus_vectors.base, record.model_id: result.corpus_vectors.fine_tuned}
        share_corpus_vectors(registry, result.corpus_vectors, models, config.embedding_cache_dir)


def share_corpus_vectors(
    registry: ModelRegistry,
    vectors: RunCorpusVectors,
    models: Mapping[str, npt.NDArray[np.float32]],
    cache_dir: Path,
) -> None:
    """Store a run's corpus vectors of registered models where their evaluations would look for them.

    bf16 vectors would pass for fp32 ones, so only an fp32 run's are shared. A failing disk or artifact
    costs a later evaluation some time, never the trained model, so it is logged, not raised.

    Args:
        registry: Where the models are registered.
        vectors: The run's corpus vectors.
        models: Registered model id -> its vectors (``vectors.base`` or ``vectors.fine_tuned``).
        cache_dir: The evaluation cache (evaluate's ``cache_dir``).
    """
    if vectors.precision != "fp32":
        logger.info("not sharing corpus vectors: this run embedded in %s, evaluation embeds in fp32", vectors.precision)
        return
    loader = CustomModelLoader()  # builds each model's cache key; released right after
    try:
        for model_id, model_vectors in models.items():
            try:
                store_corpus_vectors(model_id, vectors.dataset, model_vectors, registry=registry, cache_dir=cache_dir,
                                     max_seq_length=vectors.max_seq_length, loader=loader)  # fmt: skip
            except (OSError, RagFactoryError):
                logger.warning("could not store the corpus vectors of %s in %s", model_id, cache_dir, exc_info=True)
    finally:
        loader.clear_cache()
