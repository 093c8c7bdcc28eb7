"""The hyperparameter search: a deterministic, bounded set of trials chosen on validation only."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError
from training_helpers import fast_config

from rag_factory.models.training.config import SearchSpace
from rag_factory.models.training.hparam_search import candidate_grid
from rag_factory.models.training.trainer import fine_tune


def test_small_grids_are_tried_whole_in_order() -> None:
    grid = candidate_grid(SearchSpace(learning_rate=[1e-4, 2e-4], epochs=[1], batch_size=[16], max_trials=4))
    assert [(p.learning_rate, p.epochs, p.batch_size) for p in grid] == [(1e-4, 1, 16), (2e-4, 1, 16)]


def test_large_grids_are_sampled_the_same_way_for_a_seed() -> None:
    space = SearchSpace(learning_rate=[1e-5, 3e-5, 1e-4, 3e-4], epochs=[1, 2, 3], batch_size=[16, 32], max_trials=3)
    assert candidate_grid(space, seed=1) == candidate_grid(space, seed=1)
    assert len(candidate_grid(space, seed=1)) == 3


def test_epochs_are_capped_per_trial() -> None:
    grid = candidate_grid(SearchSpace(learning_rate=[1e-4], epochs=[2, 8], batch_size=[16], trial_epochs_cap=2))
    assert [p.epochs for p in grid] == [2]


def test_an_empty_space_is_refused() -> None:
    # The space itself refuses an empty list, before any grid is built (a job option answers INVALID_ARGUMENT).
    with pytest.raises(ValidationError, match="at least 1 item"):
        SearchSpace(learning_rate=[], epochs=[1], batch_size=[16])


@pytest.mark.slow
def test_search_picks_the_trial_with_the_best_validation_score(small_scifact: Path, training_work_dir: Path) -> None:
    space = SearchSpace(learning_rate=[1e-6, 1e-4], epochs=[1], batch_size=[16])
    config = fast_config(
        small_scifact, training_work_dir, search=space, output_dir=training_work_dir / "s", test_split=None
    )
    result = fine_tune(config)
    assert len(result.search_trials) == 2
    best = max(result.search_trials, key=lambda trial: trial["validation_ndcg@10"])
    assert result.hyperparameters["learning_rate"] == best["learning_rate"]
