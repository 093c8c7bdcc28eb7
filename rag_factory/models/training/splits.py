"""Split training data by query into train and validation, never leaking a query across the two."""

from __future__ import annotations

import random
from collections.abc import Collection, Iterable

from rag_factory.errors import DatasetError, InvalidArgumentError, describe_choices
from rag_factory.models.training.examples import TrainingData, normalise_query


def check_disjoint(data: TrainingData, test_query_ids: Iterable[str], test_queries: Collection[str] = ()) -> None:
    """Refuse training data that shares query ids (or query texts) with a test set.

    Args:
        data: The training data, after any exclusion.
        test_query_ids: Ids of the queries the model will be tested on.
        test_queries: Optional texts of those queries; identical normalised text also counts as overlap.

    Raises:
        DatasetError: Some training queries are test queries (the message names a few).
    """
    train_ids = set(data.query_ids())
    overlap = train_ids & set(test_query_ids)
    test_texts = {normalise_query(t) for t in test_queries}
    overlap |= {q for q in train_ids if normalise_query(data.queries[q]) in test_texts}
    if overlap:
        raise DatasetError(
            f"{len(overlap)} training queries are also test queries (e.g. {describe_choices(overlap, 3)}); "
            "exclude them (exclude_ids) so the test stays unseen",
            dataset=data.name,
        )


def split_by_query(
    data: TrainingData,
    validation_fraction: float = 0.2,
    *,
    seed: int = 0,
    exclude_ids: Iterable[str] = (),
) -> tuple[TrainingData, TrainingData]:
    """Split into (train, validation) by query, seeded.

    Queries with the same normalised text form one group and always land on the same side, so a
    validation query is never seen in training under another id.

    Args:
        data: Training data (pairs of the same query stay together).
        validation_fraction: Share of query groups held out, in ``[0, 1)``; 0 gives an empty validation set.
        seed: Seed of the shuffle.
        exclude_ids: Query ids to drop from both sides (e.g. the test queries).

    Returns:
        ``(train, validation)``.

    Raises:
        InvalidArgumentError: ``validation_fraction`` is outside ``[0, 1)``.
        DatasetError: Nothing is left to train on.
    """
    if not 0.0 <= validation_fraction < 1.0:
        raise InvalidArgumentError(f"validation_fraction must be in [0, 1), got {validation_fraction}")
    excluded = set(exclude_ids)
    groups: dict[str, list[str]] = {}
    for qid in data.query_ids():
        if qid not in excluded:
            groups.setdefault(normalise_query(data.queries[qid]), []).append(qid)
    keys = sorted(groups)
    random.Random(seed).shuffle(keys)
    n_validation = round(len(keys) * validation_fraction)
    if validation_fraction > 0 and len(keys) >= 2:
        n_validation = min(max(n_validation, 1), len(keys) - 1)
    validation = [q for key in keys[:n_validation] for q in groups[key]]
    train = [q for key in keys[n_validation:] for q in groups[key]]
    if not train:
        raise DatasetError(
            f"dataset {data.name!r} has no training queries left after excluding {len(excluded)} ids",
            dataset=data.name,
        )
    return data.subset(train), data.subset(validation)
