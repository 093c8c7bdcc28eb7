"""Checkpoint averaging: the uniform mean of the weights of every checkpoint on the validation plateau.

On a small training set the validation score of consecutive epochs wanders around a plateau; the
mean of the plateau's checkpoints sits nearer its centre than any one of them (Izmailov et al.,
2018, stochastic weight averaging; Wortsman et al., 2022, "Model soups"). The plateau is every
checkpoint scoring within a tolerance of the best, which leaves out the warm-up epochs. Averaging
costs one extra validation pass and replaces the best checkpoint only when it scores at least as well.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

StateDict = dict[str, "torch.Tensor"]


@dataclass(frozen=True)
class Checkpoint:
    """Weights saved at one evaluation, and the validation score they got."""

    epoch: float
    score: float
    path: Path


class CheckpointPool(TrainerCallback):  # type: ignore[misc]
    """Saves the weights at every evaluation under ``directory``, for averaging once training ends.

    The copies go to disk, not memory: nine MiniLM epochs are 0.8 GB, a base-size model's four times
    that. The trainer's own checkpoints cannot serve, as its rotation keeps only the best and the latest.
    """

    def __init__(self, directory: Path, metric: str) -> None:
        self.directory = directory
        self.metric = metric
        self.kept: list[Checkpoint] = []

    def offer(self, epoch: float, score: float, state: Mapping[str, torch.Tensor]) -> Checkpoint:
        """Save ``state`` (as it is now) with its score."""
        import torch

        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"evaluation-{len(self.kept)}.pt"
        torch.save({name: tensor.detach().cpu() for name, tensor in state.items()}, path)
        checkpoint = Checkpoint(epoch, score, path)
        self.kept.append(checkpoint)
        return checkpoint

    def best(self) -> Checkpoint:
        """The best-scoring checkpoint; on ties the earliest, as the trainer's own choice of best."""
        if not self.kept:
            raise ValueError("no checkpoint was saved")
        return max(self.kept, key=lambda checkpoint: (checkpoint.score, -self.kept.index(checkpoint)))

    def plateau(self, tolerance: float) -> list[Checkpoint]:
        """Checkpoints scoring at least ``(1 - tolerance)`` times the best score, in training order."""
        floor = self.best().score * (1.0 - tolerance)
        return [checkpoint for checkpoint in self.kept if checkpoint.score >= floor]

    def load(self, checkpoint: Checkpoint) -> StateDict:
        import torch

        state: StateDict = torch.load(checkpoint.path, map_location="cpu", weights_only=True)
        return state

    def on_evaluate(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        model: Any = None,
        metrics: dict[str, float] | None = None,
        **kw: Any,
    ) -> None:
        score = (metrics or {}).get(self.metric)
        if model is not None and isinstance(score, int | float):
            self.offer(float(state.epoch or 0.0), float(score), model.state_dict())


def average_states(states: Iterable[Mapping[str, torch.Tensor]]) -> StateDict:
    """The element-wise mean of floating-point tensors; other tensors (ids, counters) come from the first.

    States are consumed one at a time, so only the running sum and one state are in memory.
    """
    sums: StateDict = {}
    first: Mapping[str, torch.Tensor] = {}
    count = 0
    for state in states:
        if not count:
            first = state
            sums = {name: tensor.double() for name, tensor in state.items() if tensor.is_floating_point()}
        else:
            for name, total in sums.items():
                total += state[name].double()
        count += 1
    if not count:
        raise ValueError("nothing to average")
    return {
        name: (sums[name] / count).to(tensor.dtype) if name in sums else tensor.clone()
        for name, tensor in first.items()
    }


@dataclass(frozen=True)
class AveragingOutcome:
    """What averaging did: the epochs whose weights the model now holds, and its validation metrics.

    One epoch means the best checkpoint was kept: the plateau held only it, or their mean scored lower.
    """

    epochs: tuple[float, ...]
    metrics: dict[str, float]


def average_plateau(
    model: Any,
    pool: CheckpointPool,
    evaluate: Callable[[Any], dict[str, float]],
    best_metrics: dict[str, float],
    tolerance: float,
    metric: str = "ndcg@10",
) -> AveragingOutcome:
    """Load the mean of the plateau's checkpoints into ``model`` if it validates at least as well as the best.

    Args:
        model: The trained model, holding the best checkpoint's weights.
        pool: The checkpoints saved at each evaluation.
        evaluate: Validation metrics of a model, keyed as ``best_metrics`` is.
        best_metrics: Validation metrics of the best checkpoint.
        tolerance: The plateau: checkpoints within this fraction of the best score.
        metric: The metric that decides.
    """
    best = pool.best()
    plateau = pool.plateau(tolerance)
    if len(plateau) < 2:
        return AveragingOutcome((best.epoch,), best_metrics)
    model.load_state_dict(average_states(pool.load(checkpoint) for checkpoint in plateau))
    metrics = evaluate(model)
    epochs = tuple(checkpoint.epoch for checkpoint in plateau)
    if metrics.get(metric, float("-inf")) >= best_metrics.get(metric, float("-inf")):
        logger.info("averaged epochs %s: validation %s %.4f", epochs, metric, metrics[metric])
        return AveragingOutcome(epochs, metrics)
    logger.info("the mean of epochs %s validated lower; keeping the best checkpoint", epochs)
    model.load_state_dict(pool.load(best))
    return AveragingOutcome((best.epoch,), best_metrics)
