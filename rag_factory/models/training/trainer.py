"""``fine_tune``: prepare, mine, train with the sentence-transformers trainer, evaluate and export.

The caller publishes the result: registers it and shares its corpus vectors with evaluation (see
``rag_factory.jobs.publishing``, which runs both steps after this one).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from rag_factory.errors import TrainingCancelledError
from rag_factory.models.embedding.registry import ModelRegistry
from rag_factory.models.training.config import FineTuneConfig
from rag_factory.models.training.dropout import set_training_dropout
from rag_factory.models.training.events import CancelCallback, EventCallback, TrainingEvent, TrainingEventSink
from rag_factory.models.training.hparam_search import search_hyperparameters
from rag_factory.models.training.mining import encode_corpus, mine_hard_negatives
from rag_factory.models.training.precision import resolve_precision
from rag_factory.models.training.preparation import (
    PreparedRun,
    calibration_sample,
    make_validation_evaluator,
    mining_view,
    prepare,
    title_pairs,
    validation_corpus,
)
from rag_factory.models.training.result import FineTuneResult, RunCorpusVectors, RunInputs
from rag_factory.models.training.sentence_models import encoder_of, load_sentence_transformer, seed_everything
from rag_factory.models.training.session import Hyperparameters, train_once
from rag_factory.models.training.strategies import StrategyInputs, make_student
from rag_factory.retrieval.exact_search import evaluate_encoder, search
from rag_factory.retrieval.metrics import evaluate_run
from rag_factory.statistics.paired import compare_paired

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

logger = logging.getLogger(__name__)


def contrastive_options(config: FineTuneConfig) -> dict[str, Any]:
    """Keyword arguments of the in-batch losses; empty for the loss's own defaults."""
    options: dict[str, Any] = {}
    if config.contrastive_directions != ["query_to_doc"]:
        options["directions"] = tuple(config.contrastive_directions)
    if config.hardness_mode is not None:
        options.update(hardness_mode=config.hardness_mode, hardness_strength=config.hardness_strength)
    return options


def _optional_hyperparameters(config: FineTuneConfig) -> dict[str, float]:
    # Dropout rates, averaging tolerance and hardness weight, recorded only when the run uses them.
    values = {
        "attention_dropout": config.attention_dropout,
        "hidden_dropout": config.hidden_dropout,
        "averaging_tolerance": config.averaging_tolerance if config.average_checkpoints else None,
    }
    if config.hardness_mode is not None:
        values["hardness_strength"] = config.hardness_strength
    return {name: value for name, value in values.items() if value is not None}


def _subset_metrics(
    query_vectors: npt.NDArray[np.float32],
    doc_vectors: npt.NDArray[np.float32],
    run: PreparedRun,
    corpus: dict[str, str],
) -> dict[str, float]:
    doc_ids = list(run.data.corpus)
    keep = [i for i, d in enumerate(doc_ids) if d in corpus]
    positives = run.validation.positives()
    found = search(query_vectors, doc_vectors[keep], list(positives), [doc_ids[i] for i in keep], top_k=100)
    qrels = {q: dict.fromkeys(docs, 1) for q, docs in positives.items()}
    return evaluate_run(found, qrels, ("ndcg@10", "mrr@10", "recall@100"))


def _check_cancel(cancel: threading.Event | None, stage: str) -> None:
    if cancel is not None and cancel.is_set():
        raise TrainingCancelledError(f"training was cancelled during {stage}; nothing was registered")


def fine_tune(
    config: FineTuneConfig,
    *,
    on_event: TrainingEventSink | None = None,
    cancel: threading.Event | None = None,
    exclude_ids: Sequence[str] | None = None,
) -> FineTuneResult:
    """Fine-tune the base model on ``config.data``, export the result and evaluate it.

    Every input is checked before any model is loaded. The test split (BEIR data) is evaluated once,
    after training, and never used for a choice; choices (best epoch, search) use validation only.
    Nothing is registered here: the result carries what registering it and sharing its corpus
    vectors need (``inputs``, ``corpus_vectors``), and ``rag_factory.jobs.publishing`` does both.

    Args:
        config: The run; its defaults are the default recipe. ``registry_path`` is where the base
            is resolved.
        on_event: Receives progress events (mining, step, evaluation, export, done).
        cancel: When set, training stops at the next step and ``TrainingCancelledError`` is raised.
        exclude_ids: Query ids to leave out of training and validation.

    Returns:
        Metrics and paths, the run's inputs, and the test corpus's vectors (BEIR data with a test split).

    Raises:
        DatasetError, UnknownFormatError, ModelNotFoundError, HubModelNotAvailableError: Bad inputs,
            raised before training.
        TrainingCancelledError: ``cancel`` was set; nothing was exported or registered.
    """
    from rag_factory.models.training.export import export_model, measure_latency_ms

    started = time.perf_counter()
    emit: TrainingEventSink = on_event or (lambda event: None)
    registry = ModelRegistry(config.registry_path) if config.registry_path is not None else None
    try:
        run = prepare(config, registry, list(exclude_ids or ()))
        seed_everything(config.seed)
        base = load_sentence_transformer(run.base_path, config.device)
        length: int = config.max_seq_length or int(base.max_seq_length or 256)
        base.max_seq_length = length
        precision = resolve_precision(config.precision, config.device)
        encode_base = encoder_of(base, length, config.show_progress, precision)
        cache = config.work_dir / "cache"
        base_key = f"{run.base_path}:{run.base_path.stat().st_mtime_ns}:{length}:{precision}"
        doc_vectors = encode_corpus(encode_base, run.data, model_key=base_key, cache_dir=cache)
        inputs = StrategyInputs(
            num_negatives=config.num_negatives, seed=config.seed, contrastive=contrastive_options(config)
        )
        train_data = title_pairs(run, config.title_pseudo_queries)
        if run.strategy.needs_negatives:
            emit(TrainingEvent(kind="mining", message=f"mining {config.num_negatives} negatives per query"))
            inputs.negatives = mine_hard_negatives(
                mining_view(train_data, run.data.corpus), encode_base, model_key=base_key,
                num_negatives=config.num_negatives,
                top_k=config.mining_top_k, margin=config.mining_margin, cache_dir=cache,
                doc_vectors=doc_vectors, progress=config.show_progress,
            )  # fmt: skip
            _check_cancel(cancel, "mining")
        if run.strategy.trains_student:
            teacher = base
            if config.teacher_model is not None:
                from rag_factory.models.embedding.hub import resolve_model_path

                teacher = load_sentence_transformer(resolve_model_path(config.teacher_model), config.device)
            inputs.teacher = encoder_of(teacher, length, precision=precision)
        evaluator, corpus, base_validation = None, {}, {}
        if run.validation.pairs:
            val_queries = encode_base([run.validation.queries[q] for q in run.validation.positives()])
            corpus = validation_corpus(run, val_queries, doc_vectors)
            base_validation = _subset_metrics(val_queries, doc_vectors, run, corpus)
            evaluator = make_validation_evaluator(run, corpus, length, precision=precision)
        rows = run.strategy.build_rows(train_data, inputs)

        def fresh_model() -> SentenceTransformer:
            model = load_sentence_transformer(run.base_path, config.device)
            model.max_seq_length = length
            if run.strategy.trains_student:
                model = make_student(model, config.student_layers)
            set_training_dropout(model, attention=config.attention_dropout, hidden=config.hidden_dropout)
            return model

        params = Hyperparameters(config.learning_rate, config.epochs, config.batch_size)
        trials: list[dict[str, float]] = []
        if config.search is not None and evaluator is not None:
            params, trials = search_hyperparameters(
                run, rows, inputs, evaluator, fresh_model, config.search, cancel=cancel, precision=precision
            )
            _check_cancel(cancel, "the hyperparameter search")
        callbacks: list[Any] = [EventCallback(emit)]
        if cancel is not None:
            callbacks.append(CancelCallback(cancel))
        model = fresh_model()
        outcome = train_once(
            model, run, rows, inputs, params, config.work_dir / "checkpoints",
            evaluator=evaluator, callbacks=callbacks, cancel=cancel, precision=precision,
        )  # fmt: skip
        _check_cancel(cancel, "training")

        output_dir = config.output_dir or config.work_dir / "model"
        emit(TrainingEvent(kind="export", epoch=outcome.epochs_trained, message=f"exporting to {output_dir}"))
        size_mb = export_model(model, output_dir, onnx=config.export_onnx, calibration_texts=calibration_sample(run))
        base_test = test = comparison = vectors = None
        if run.test is not None:
            split = config.test_split or "test"
            base_eval = evaluate_encoder(encode_base, run.test, split, doc_vectors=doc_vectors)
            final_eval = evaluate_encoder(encoder_of(model, length, config.show_progress, precision), run.test, split)
            vectors = RunCorpusVectors(run.test, doc_vectors, final_eval.doc_vectors, length, precision)
            base_test, test = base_eval.metrics, final_eval.metrics
            comparison = compare_paired(
                base_eval.per_query["ndcg@10"], final_eval.per_query["ndcg@10"], metric="ndcg@10", seed=config.seed
            )
        result = FineTuneResult(
            output_dir=output_dir,
            strategy=config.strategy,
            hyperparameters={"learning_rate": params.learning_rate, "epochs": params.epochs,
                             "batch_size": params.batch_size, "train_max_seq_length": config.train_max_seq_length,
                             "max_seq_length": length, "warmup_ratio": config.warmup_ratio, "seed": config.seed,
                             "bf16": float(precision == "bf16"),
                             **({"num_negatives": config.num_negatives} if run.strategy.needs_negatives else {}),
                             **_optional_hyperparameters(config)},
            base_validation=base_validation,
            validation=outcome.validation,
            base_test=base_test,
            test=test,
            comparison=comparison,
            epochs_trained=outcome.epochs_trained,
            train_rows=outcome.rows,
            train_seconds=outcome.seconds,
            total_seconds=0.0,
            model_size_mb=size_mb,
            latency_ms=measure_latency_ms(model, list(run.data.queries.values())[:32]),
            search_trials=trials,
            averaged_epochs=outcome.averaged_epochs,
            inputs=RunInputs.of(run),
            corpus_vectors=vectors,
        )  # fmt: skip
        _check_cancel(cancel, "evaluation")
        result.total_seconds = time.perf_counter() - started
        emit(TrainingEvent(kind="done", epoch=outcome.epochs_trained, metrics=test or outcome.validation))
        return result
    finally:
        if registry is not None:
            registry.close()
