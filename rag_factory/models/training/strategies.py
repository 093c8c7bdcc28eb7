"""Training strategies by name: each builds a sentence-transformers loss and the dataset columns it reads."""

from __future__ import annotations

import copy
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rag_factory.errors import InvalidArgumentError, UnknownFormatError, describe_choices
from rag_factory.models.training.examples import TrainingData
from rag_factory.retrieval.exact_search import Encoder

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer
    from torch import nn

Rows = dict[str, list[Any]]


@dataclass
class StrategyInputs:
    """What a strategy may draw on besides the training pairs.

    Attributes:
        negatives: Query id -> mined (or logged) negative document ids.
        num_negatives: Negatives per row for n-tuple strategies.
        teacher: Texts to teacher vectors, for distillation.
        mini_batch_size: Mini-batch of the cached (GradCache) loss.
        seed: Seed for any sampling.
        contrastive: Keyword arguments of the in-batch losses (directions, hardness weighting).
    """

    negatives: dict[str, list[str]] = field(default_factory=dict)
    num_negatives: int = 1
    teacher: Encoder | None = None
    mini_batch_size: int = 32
    seed: int = 0
    contrastive: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Strategy:
    """One way to fine-tune: a loss and the dataset columns it needs.

    Attributes:
        name: Registry name.
        description: One line for help texts.
        build_loss: ``(model, inputs) -> loss module``.
        build_rows: ``(data, inputs) -> columns``; column order is what the loss reads.
        needs_negatives: Whether hard negatives are mined before training.
        trains_student: Whether a smaller student is cut from the base and trained instead of the base.
    """

    name: str
    description: str
    build_loss: Callable[[SentenceTransformer, StrategyInputs], nn.Module]
    build_rows: Callable[[TrainingData, StrategyInputs], Rows]
    needs_negatives: bool = False
    trains_student: bool = False


def pair_rows(data: TrainingData, inputs: StrategyInputs) -> Rows:
    """``anchor`` (query) and ``positive`` (document) columns, one row per positive pair."""
    rows: Rows = {"anchor": [], "positive": []}
    for qid, doc_id in data.pairs:
        rows["anchor"].append(data.queries[qid])
        rows["positive"].append(data.corpus[doc_id])
    return rows


def _tuple_rows(data: TrainingData, inputs: StrategyInputs, count: int) -> Rows:
    # Queries without enough mined negatives borrow random documents, so no pair is lost.
    rng = random.Random(inputs.seed)
    doc_ids = list(data.corpus)
    positives = data.positives()
    rows: Rows = {"anchor": [], "positive": [], **{f"negative_{i + 1}": [] for i in range(count)}}
    for qid, doc_id in data.pairs:
        negatives = list(inputs.negatives.get(qid, []))[:count]
        while len(negatives) < count:
            candidate = rng.choice(doc_ids)
            if candidate not in positives[qid] and candidate not in negatives:
                negatives.append(candidate)
        rows["anchor"].append(data.queries[qid])
        rows["positive"].append(data.corpus[doc_id])
        for i, negative in enumerate(negatives):
            rows[f"negative_{i + 1}"].append(data.corpus[negative])
    return rows


def triplet_rows(data: TrainingData, inputs: StrategyInputs) -> Rows:
    """``anchor``, ``positive`` and one ``negative_1`` column from the miner."""
    return _tuple_rows(data, inputs, 1)


def n_tuple_rows(data: TrainingData, inputs: StrategyInputs) -> Rows:
    """``anchor``, ``positive`` and ``negative_1..n`` columns from the miner."""
    return _tuple_rows(data, inputs, inputs.num_negatives)


def distillation_rows(data: TrainingData, inputs: StrategyInputs) -> Rows:
    """``text`` and ``label`` (the teacher's vector) for every training query and positive document."""
    if inputs.teacher is None:
        raise InvalidArgumentError("the distillation strategy needs a teacher encoder")
    texts = list(dict.fromkeys([data.queries[q] for q, _ in data.pairs] + [data.corpus[d] for _, d in data.pairs]))
    targets = inputs.teacher(texts)
    return {"text": texts, "label": [row.tolist() for row in targets]}


def _mnrl(model: SentenceTransformer, inputs: StrategyInputs) -> nn.Module:
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    loss: nn.Module = MultipleNegativesRankingLoss(model, **inputs.contrastive)
    return loss


def _cached_mnrl(model: SentenceTransformer, inputs: StrategyInputs) -> nn.Module:
    from sentence_transformers.sentence_transformer.losses import CachedMultipleNegativesRankingLoss

    loss: nn.Module = CachedMultipleNegativesRankingLoss(
        model, mini_batch_size=inputs.mini_batch_size, **inputs.contrastive
    )
    return loss


def _triplet(model: SentenceTransformer, inputs: StrategyInputs) -> nn.Module:
    from sentence_transformers.sentence_transformer.losses import TripletDistanceMetric, TripletLoss

    # Cosine distance with a 0.3 margin suits normalised MiniLM vectors better than Euclidean with 5.
    loss: nn.Module = TripletLoss(model, distance_metric=TripletDistanceMetric.COSINE, triplet_margin=0.3)
    return loss


def _mse(model: SentenceTransformer, inputs: StrategyInputs) -> nn.Module:
    from sentence_transformers.sentence_transformer.losses import MSELoss

    loss: nn.Module = MSELoss(model)
    return loss


STRATEGIES: dict[str, Strategy] = {
    s.name: s
    for s in (
        Strategy("mnrl", "contrastive, in-batch negatives (MultipleNegativesRankingLoss)", _mnrl, pair_rows),
        Strategy(
            "cached_mnrl",
            "in-batch negatives with GradCache, for batches larger than memory allows",
            _cached_mnrl,
            pair_rows,
        ),
        Strategy("triplet", "TripletLoss over (query, positive, mined negative)", _triplet, triplet_rows, True),
        Strategy("hard_negative", "MNRL over (query, positive, n mined negatives)", _mnrl, n_tuple_rows, True),
        Strategy(
            "distillation",
            "a student cut from the base learns the teacher's vectors (MSELoss)",
            _mse,
            distillation_rows,
            trains_student=True,
        ),
    )
}


def get_strategy(name: str) -> Strategy:
    """The strategy registered under ``name``.

    Raises:
        UnknownFormatError: No such strategy (the message lists the valid names).
    """
    try:
        return STRATEGIES[name]
    except KeyError:
        raise UnknownFormatError(
            f"unknown training strategy {name!r}; valid strategies: {describe_choices(STRATEGIES)}", strategy=name
        ) from None


def make_student(base: SentenceTransformer, num_layers: int = 3) -> SentenceTransformer:
    """A copy of ``base`` keeping ``num_layers`` evenly spaced transformer layers (e.g. 0, 2, 4 of 6).

    Raises:
        InvalidArgumentError: ``num_layers`` is not between 1 and the base's layer count, or the
            base is not a BERT-like encoder.
    """
    import torch

    student = copy.deepcopy(base)
    transformer: Any = getattr(student[0], "auto_model", None)
    encoder: Any = getattr(transformer, "encoder", None)
    layers = getattr(encoder, "layer", None)
    if not isinstance(layers, torch.nn.ModuleList):
        raise InvalidArgumentError("make_student needs a BERT-like encoder with encoder.layer")
    if not 1 <= num_layers <= len(layers):
        raise InvalidArgumentError(f"num_layers must be between 1 and {len(layers)}, got {num_layers}")
    keep = sorted({round(i * len(layers) / num_layers) for i in range(num_layers)})
    encoder.layer = torch.nn.ModuleList(layers[i] for i in keep)
    transformer.config.num_hidden_layers = len(keep)
    return student
