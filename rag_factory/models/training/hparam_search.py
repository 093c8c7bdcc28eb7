"""A small, seeded grid or random search over learning rate, epochs and batch size, judged on validation only."""

from __future__ import annotations

import itertools
import random
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rag_factory.errors import InvalidArgumentError
from rag_factory.models.training.config import SearchSpace
from rag_factory.models.training.precision import ResolvedPrecision
from rag_factory.models.training.preparation import PreparedRun
from rag_factory.models.training.session import Hyperparameters, train_once
from rag_factory.models.training.strategies import StrategyInputs

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer


def candidate_grid(space: SearchSpace, seed: int = 0) -> list[Hyperparameters]:
    """The trials to run: the whole grid, or a seeded sample of ``space.max_trials`` of it, in a stable order."""
    grid = [
        Hyperparameters(lr, min(epochs, space.trial_epochs_cap or epochs), batch)
        for lr, epochs, batch in itertools.product(space.learning_rate, space.epochs, space.batch_size)
    ]
    grid = list(dict.fromkeys(grid))
    if not grid:
        raise InvalidArgumentError("the search space is empty; give at least one value per hyperparameter")
    if len(grid) > space.max_trials:
        grid = random.Random(seed).sample(grid, space.max_trials)
    return grid


def search_hyperparameters(
    run: PreparedRun,
    rows: dict[str, list[Any]],
    inputs: StrategyInputs,
    evaluator: Any,
    fresh_model: Callable[[], SentenceTransformer],
    space: SearchSpace,
    *,
    cancel: threading.Event | None = None,
    precision: ResolvedPrecision = "fp32",
) -> tuple[Hyperparameters, list[dict[str, float]]]:
    """Train one fresh model per trial and keep the values with the best validation nDCG@10.

    Ties go to the earlier trial (the grid order is deterministic), so the choice is reproducible.
    The test split is never touched.

    Returns:
        ``(best hyperparameters, one row per trial with its values and validation nDCG@10)``.
    """
    trials: list[dict[str, float]] = []
    best: tuple[float, Hyperparameters] | None = None
    for number, params in enumerate(candidate_grid(space, run.config.seed)):
        if cancel is not None and cancel.is_set():
            break
        model = fresh_model()
        outcome = train_once(
            model, run, rows, inputs, params, run.config.work_dir / f"search-{number}",
            evaluator=evaluator, precision=precision,
        )  # fmt: skip
        score = outcome.validation.get("ndcg@10", float("-inf"))
        trials.append(
            {"learning_rate": params.learning_rate, "epochs": params.epochs, "batch_size": params.batch_size,
             "validation_ndcg@10": score, "epochs_trained": outcome.epochs_trained}
        )  # fmt: skip
        if best is None or score > best[0]:
            best = (score, params)
    if best is None:
        return Hyperparameters(run.config.learning_rate, run.config.epochs, run.config.batch_size), trials
    return best[1], trials
