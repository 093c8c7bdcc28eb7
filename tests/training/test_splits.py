"""The train/validation split by query: seeded, leak-free, honouring excluded ids."""

from __future__ import annotations

import pytest

from rag_factory.data.beir import BeirDataset
from rag_factory.errors import DatasetError
from rag_factory.models.training.examples import TrainingData, from_beir, normalise_query
from rag_factory.models.training.splits import check_disjoint, split_by_query


def _with_duplicate_texts() -> TrainingData:
    queries = {str(i): f"query {i // 2}" for i in range(40)}  # ids 0 and 1 share a text, and so on
    return TrainingData("t", queries, {"d": "doc"}, [(q, "d") for q in queries])


def test_split_never_puts_a_query_text_on_both_sides() -> None:
    train, validation = split_by_query(_with_duplicate_texts(), 0.3, seed=1)
    train_texts = {normalise_query(train.queries[q]) for q in train.query_ids()}
    validation_texts = {normalise_query(validation.queries[q]) for q in validation.query_ids()}
    assert train_texts.isdisjoint(validation_texts)
    assert len(train.query_ids()) + len(validation.query_ids()) == 40


def test_split_is_deterministic_for_a_seed(scifact_mini: BeirDataset) -> None:
    data = from_beir(scifact_mini, "train")
    first = split_by_query(data, 0.2, seed=3)[1].query_ids()
    assert first == split_by_query(data, 0.2, seed=3)[1].query_ids()
    assert first != split_by_query(data, 0.2, seed=4)[1].query_ids()


def test_split_honours_excluded_ids(scifact_mini: BeirDataset) -> None:
    data = from_beir(scifact_mini, "train")
    excluded = data.query_ids()[:30]
    train, validation = split_by_query(data, 0.2, seed=0, exclude_ids=excluded)
    assert set(excluded).isdisjoint(train.query_ids() + validation.query_ids())


def test_split_with_everything_excluded_is_refused(scifact_mini: BeirDataset) -> None:
    data = from_beir(scifact_mini, "train")
    with pytest.raises(DatasetError, match="no training queries"):
        split_by_query(data, 0.2, exclude_ids=data.query_ids())


def test_test_ids_overlapping_the_training_queries_are_refused(scifact_mini: BeirDataset) -> None:
    data = from_beir(scifact_mini, "train")
    with pytest.raises(DatasetError, match="also test queries"):
        check_disjoint(data, [data.query_ids()[0], "not-a-train-id"])


def test_scifact_mini_train_and_test_are_disjoint(scifact_mini: BeirDataset) -> None:
    test_ids = list(scifact_mini.split("test"))
    check_disjoint(from_beir(scifact_mini, "train"), test_ids, [scifact_mini.queries[q] for q in test_ids])
