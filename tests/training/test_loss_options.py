"""In-batch loss options: interaction directions and hardness weighting reach the real MNRL losses."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from pydantic import ValidationError

from rag_factory.errors import InvalidArgumentError
from rag_factory.jobs.fine_tune_job import job_config
from rag_factory.models.training.config import FineTuneConfig
from rag_factory.models.training.sentence_models import load_sentence_transformer
from rag_factory.models.training.strategies import StrategyInputs, get_strategy
from rag_factory.models.training.trainer import contrastive_options

GTE = ["query_to_doc", "query_to_query", "doc_to_query", "doc_to_doc"]


def test_the_default_recipe_leaves_the_loss_at_its_own_defaults() -> None:
    assert contrastive_options(FineTuneConfig(data=Path("."))) == {}


def test_directions_and_hardness_reach_every_in_batch_loss(minilm_dir: Path) -> None:
    config = FineTuneConfig(
        data=Path("."), contrastive_directions=GTE, hardness_mode="all_negatives", hardness_strength=5.0
    )
    inputs = StrategyInputs(contrastive=contrastive_options(config))
    model = load_sentence_transformer(minilm_dir, "cpu")
    for name in ("mnrl", "cached_mnrl", "hard_negative"):
        loss = get_strategy(name).build_loss(model, inputs)
        assert tuple(loss.directions) == tuple(GTE), name
        assert (loss.hardness_mode, loss.hardness_strength) == ("all_negatives", 5.0), name


def test_more_directions_make_the_same_batch_harder(minilm_dir: Path) -> None:
    # One joint softmax over more terms: the positive's logit is unchanged, the denominator only grows.
    model = load_sentence_transformer(minilm_dir, "cpu")
    model.eval()
    batch = [
        model.preprocess(["aspirin lowers fever", "statins reduce cholesterol", "insulin regulates glucose"]),
        model.preprocess(["Aspirin is an antipyretic.", "Statins lower LDL.", "Insulin controls blood sugar."]),
    ]
    losses = {}
    for label, directions in (("standard", ["query_to_doc"]), ("gte", GTE)):
        options = contrastive_options(FineTuneConfig(data=Path("."), contrastive_directions=directions))
        loss = get_strategy("mnrl").build_loss(model, StrategyInputs(contrastive=options))
        with torch.no_grad():
            losses[label] = float(loss([dict(features) for features in batch], None))
    assert losses["gte"] > losses["standard"] > 0


@pytest.mark.parametrize(
    ("directions", "problem"),
    [(["doc_to_query"], "must include 'query_to_doc'"), (["query_to_doc", "query_to_doc"], "twice")],
)
def test_bad_directions_are_refused_before_training(directions: list[str], problem: str, tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match=problem):
        FineTuneConfig(data=Path("."), contrastive_directions=directions)
    # The sidecar's job spec goes through the same check and reports INVALID_ARGUMENT.
    with pytest.raises(InvalidArgumentError, match=problem):
        job_config({"data": str(tmp_path), "contrastive_directions": directions}, tmp_path / "registry")
