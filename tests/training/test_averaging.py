"""Checkpoint averaging: what is saved, which checkpoints form the plateau, when their mean replaces the best."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from rag_factory.models.training.averaging import (
    AveragingOutcome,
    CheckpointPool,
    average_plateau,
    average_states,
)


def _linear(weight: float) -> torch.nn.Linear:
    layer = torch.nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        layer.weight.fill_(weight)
    return layer


def _weight(model: torch.nn.Module) -> float:
    return float(model.weight.detach().mean())


def _pool(tmp_path: Path, checkpoints: list[tuple[float, float]]) -> CheckpointPool:
    """A pool holding one Linear layer per (weight, score), at epochs 1, 2, 3..."""
    pool = CheckpointPool(tmp_path / "averaging", metric="eval_validation_cosine_ndcg@10")
    for epoch, (weight, score) in enumerate(checkpoints, start=1):
        pool.offer(float(epoch), score, _linear(weight).state_dict())
    return pool


def test_floating_tensors_are_averaged_and_integer_ones_come_from_the_first() -> None:
    states = [
        {"weight": torch.tensor([1.0, 2.0]), "position_ids": torch.tensor([0, 1, 2])},
        {"weight": torch.tensor([3.0, 6.0]), "position_ids": torch.tensor([0, 1, 2])},
        {"weight": torch.tensor([2.0, 1.0]), "position_ids": torch.tensor([0, 1, 2])},
    ]
    averaged = average_states(iter(states))  # a stream: one state at a time
    assert torch.allclose(averaged["weight"], torch.tensor([2.0, 3.0]))
    assert averaged["position_ids"].dtype == torch.int64
    assert torch.equal(averaged["position_ids"], states[0]["position_ids"])
    with pytest.raises(ValueError, match="nothing to average"):
        average_states([])


def test_the_pool_saves_each_evaluation_to_disk_as_it_was_then(tmp_path: Path) -> None:
    pool = CheckpointPool(tmp_path / "averaging", metric="m")
    layer = _linear(1.0)
    first = pool.offer(1.0, 0.70, layer.state_dict())
    with torch.no_grad():
        layer.weight.fill_(2.0)  # later training must not change a saved checkpoint
    pool.offer(2.0, 0.80, layer.state_dict())
    assert first.path.is_file() and first.path.parent == tmp_path / "averaging"
    assert float(pool.load(first)["weight"].mean()) == pytest.approx(1.0)
    assert [(c.epoch, c.score) for c in pool.kept] == [(1.0, 0.70), (2.0, 0.80)]


def test_the_best_is_the_earliest_top_score_and_the_plateau_is_relative_to_it(tmp_path: Path) -> None:
    pool = _pool(tmp_path, [(0.0, 0.50), (1.0, 0.78), (2.0, 0.80), (3.0, 0.80), (4.0, 0.76)])
    assert pool.best().epoch == 3.0
    # Within 4 % of 0.80 is 0.768 or more: the warm-up epoch and the 0.76 epoch are off the plateau.
    assert [c.epoch for c in pool.plateau(0.04)] == [2.0, 3.0, 4.0]
    assert [c.epoch for c in pool.plateau(0.0)] == [3.0, 4.0]
    with pytest.raises(ValueError, match="no checkpoint"):
        CheckpointPool(tmp_path / "empty", metric="m").best()


def test_the_mean_replaces_the_best_checkpoint_only_when_it_validates_at_least_as_well(tmp_path: Path) -> None:
    pool = _pool(tmp_path, [(1.0, 0.90), (3.0, 0.88), (5.0, 0.87), (9.0, 0.10)])

    def closeness_to(target: float) -> Callable[[torch.nn.Module], dict[str, float]]:
        return lambda model: {"ndcg@10": 1.0 - abs(_weight(model) - target) / 10}

    # Scores peak at weight 3: the plateau's mean (epochs 1-3, weight 3) beats the best checkpoint (weight 1).
    model = _linear(1.0)
    outcome = average_plateau(model, pool, closeness_to(3.0), {"ndcg@10": 0.9}, tolerance=0.04)
    assert outcome == AveragingOutcome((1.0, 2.0, 3.0), {"ndcg@10": 1.0})
    assert _weight(model) == pytest.approx(3.0)

    # Scores peak at weight 1: the mean validates lower, so the best checkpoint's weights come back.
    outcome = average_plateau(model, pool, closeness_to(1.0), {"ndcg@10": 1.0}, tolerance=0.04)
    assert outcome == AveragingOutcome((1.0,), {"ndcg@10": 1.0})
    assert _weight(model) == pytest.approx(1.0)


def test_a_plateau_of_one_checkpoint_costs_no_validation_pass(tmp_path: Path) -> None:
    pool = _pool(tmp_path, [(1.0, 0.5), (2.0, 0.9)])
    model = _linear(2.0)

    def never_called(model: torch.nn.Module) -> dict[str, float]:
        raise AssertionError("one checkpoint needs no validation pass")

    outcome = average_plateau(model, pool, never_called, {"ndcg@10": 0.9}, tolerance=0.04)
    assert outcome == AveragingOutcome((2.0,), {"ndcg@10": 0.9})
    assert _weight(model) == pytest.approx(2.0)


@pytest.mark.parametrize(
    ("epochs", "summary"),
    [
        ((2.0, 3.0, 4.0), "the mean of epochs 2, 3, 4"),
        ((4.0,), "epoch 4, the best on validation"),
        ((), ""),  # trained without validation: nothing was chosen
    ],
)
def test_a_result_says_where_its_weights_came_from(epochs: tuple[float, ...], summary: str, tmp_path: Path) -> None:
    from rag_factory.models.training.result import FineTuneResult

    result = FineTuneResult(
        output_dir=tmp_path, strategy="hard_negative", hyperparameters={}, base_validation={}, validation={},
        base_test=None, test=None, comparison=None, epochs_trained=4.0, train_rows=10, train_seconds=1.0,
        total_seconds=1.0, model_size_mb=1.0, latency_ms=1.0, averaged_epochs=epochs,
    )  # fmt: skip
    assert result.weights_summary() == summary
