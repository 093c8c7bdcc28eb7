"""One session of the sentence-transformers trainer: ``train_once`` and what it reports."""

from __future__ import annotations

import math
import shutil
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rag_factory.models.training.precision import ResolvedPrecision
from rag_factory.models.training.preparation import PreparedRun
from rag_factory.models.training.strategies import StrategyInputs

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

BEST_METRIC = "eval_validation_cosine_ndcg@10"


@dataclass(frozen=True)
class Hyperparameters:
    """The values a search varies."""

    learning_rate: float
    epochs: int
    batch_size: int


@dataclass
class TrainOutcome:
    """What one training session produced (the model is trained in place)."""

    validation: dict[str, float]  # metrics of the restored best checkpoint ({} without validation)
    epochs_trained: float
    seconds: float
    rows: int
    steps: int
    averaged_epochs: tuple[float, ...] = ()  # epochs whose weights the model holds (their mean if several)


def train_once(
    model: SentenceTransformer,
    run: PreparedRun,
    rows: dict[str, list[Any]],
    inputs: StrategyInputs,
    params: Hyperparameters,
    output_dir: Path,
    *,
    evaluator: Any | None,
    callbacks: Sequence[Any] = (),
    cancel: threading.Event | None = None,
    precision: ResolvedPrecision = "fp32",
) -> TrainOutcome:
    """One session of the sentence-transformers trainer on ``rows``.

    With an evaluator, the model ends holding the best validation checkpoint, or (with
    ``config.average_checkpoints``) the mean of the checkpoints on the validation plateau when that
    validates at least as well. A set ``cancel`` skips the averaging (the run is being abandoned).
    ``precision`` bf16 trains under autocast; the weights, and the model's later calls, stay fp32.
    """
    from datasets import Dataset
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.base.sampler import BatchSamplers
    from transformers import EarlyStoppingCallback, PrinterCallback

    from rag_factory.models.training.averaging import CheckpointPool, average_plateau

    config = run.config
    dataset = Dataset.from_dict(rows)
    steps_per_epoch = math.ceil(len(dataset) / params.batch_size)
    every = "steps" if config.eval_steps else "epoch"
    validate = evaluator is not None
    args = SentenceTransformerTrainingArguments(
        output_dir=str(output_dir),
        num_train_epochs=params.epochs,
        per_device_train_batch_size=params.batch_size,
        learning_rate=params.learning_rate,
        warmup_steps=config.warmup_ratio,  # a float below 1 is a ratio of all steps
        weight_decay=config.weight_decay,
        batch_sampler=BatchSamplers.BATCH_SAMPLER if run.strategy.trains_student else BatchSamplers.NO_DUPLICATES,
        eval_strategy=every if validate else "no",
        eval_steps=config.eval_steps,
        save_strategy=every if validate else "no",
        save_steps=config.eval_steps or 500,
        save_total_limit=2,
        save_only_model=True,
        load_best_model_at_end=validate,
        metric_for_best_model=BEST_METRIC if validate else None,
        greater_is_better=True,
        logging_steps=max(1, steps_per_epoch // 4),
        report_to="none",
        seed=config.seed,
        data_seed=config.seed,
        use_cpu=config.device == "cpu",
        bf16=precision == "bf16",
        disable_tqdm=not config.show_progress,
        dataloader_num_workers=0,
    )
    trainer_callbacks = list(callbacks)
    averaging_on = validate and config.average_checkpoints
    pool = CheckpointPool(output_dir / "averaging", BEST_METRIC) if averaging_on else None
    if pool is not None:
        trainer_callbacks.append(pool)
    if validate and config.early_stopping_patience:
        trainer_callbacks.append(EarlyStoppingCallback(early_stopping_patience=config.early_stopping_patience))
    inference_length = model.max_seq_length
    model.max_seq_length = config.train_max_seq_length
    trainer = SentenceTransformerTrainer(
        model=model,
        args=args,
        train_dataset=dataset,
        loss=run.strategy.build_loss(model, inputs),
        evaluator=evaluator,
        callbacks=trainer_callbacks,
    )
    if not config.show_progress:
        # Without bars the trainer prints raw log dicts to stdout; events already report them.
        trainer.remove_callback(PrinterCallback)
    started = time.perf_counter()
    try:
        trainer.train()
    finally:
        model.max_seq_length = inference_length
        _drop_autocast_wrapper(model)
    state = trainer.state
    best: dict[str, float] = {}
    for entry in state.log_history:
        if BEST_METRIC in entry and (not best or entry[BEST_METRIC] == state.best_metric):
            best = _validation_metrics(entry, logged=True)
            if entry[BEST_METRIC] == state.best_metric:
                break
    averaged: tuple[float, ...] = ()
    if pool is not None and evaluator is not None and best and not (cancel is not None and cancel.is_set()):
        validate_model = evaluator
        averaging = average_plateau(
            model, pool, lambda m: _validation_metrics(validate_model(m)), best, config.averaging_tolerance
        )
        best, averaged = averaging.metrics, averaging.epochs
    seconds = time.perf_counter() - started
    shutil.rmtree(output_dir, ignore_errors=True)  # checkpoints; the caller saves the restored model
    return TrainOutcome(best, float(state.epoch or 0.0), seconds, len(dataset), state.global_step, averaged)


def _drop_autocast_wrapper(model: SentenceTransformer) -> None:
    # For bf16, accelerate replaces the instance's forward with an autocast wrapper and keeps the
    # original; without undoing that, every later encode and the ONNX export would run in bf16.
    if model.__dict__.pop("_original_forward", None) is not None:
        model.__dict__.pop("forward", None)


def _validation_metrics(evaluated: dict[str, float], logged: bool = False) -> dict[str, float]:
    # The validation evaluator's keys ("validation_cosine_ndcg@10") in short form ("ndcg@10"); in the
    # trainer's log history they carry an "eval_" prefix as well (``logged``).
    prefix = ("eval_" if logged else "") + "validation_cosine_"
    return {k.removeprefix(prefix): float(v) for k, v in evaluated.items() if k.startswith(prefix)}
