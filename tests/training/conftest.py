"""Fixtures for the fine-tuning tests: a small real subset of the bundled SciFact and fast run settings."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from rag_factory.data.beir import BeirDataset, write_beir


@pytest.fixture(scope="session")
def small_scifact(scifact_mini: BeirDataset, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """160 train and 50 test queries of the bundled SciFact with their documents plus 140 others (~350 docs)."""
    rng = random.Random(7)
    train_ids = sorted(scifact_mini.split("train"))
    test_ids = sorted(scifact_mini.split("test"))
    rng.shuffle(train_ids)
    rng.shuffle(test_ids)
    qrels = {
        "train": {q: scifact_mini.split("train")[q] for q in train_ids[:160]},
        "test": {q: scifact_mini.split("test")[q] for q in test_ids[:50]},
    }
    wanted = {d for split in qrels.values() for docs in split.values() for d in docs}
    others = sorted(set(scifact_mini.corpus) - wanted)
    wanted |= set(rng.sample(others, 140))
    corpus = {d: scifact_mini.corpus[d] for d in sorted(wanted)}
    queries = {q: scifact_mini.queries[q] for split in qrels.values() for q in split}
    return write_beir(tmp_path_factory.mktemp("small-scifact"), corpus, queries, qrels)


@pytest.fixture(scope="session")
def training_work_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One work directory for the session, so the base model's corpus vectors are encoded once."""
    return tmp_path_factory.mktemp("training-work")
