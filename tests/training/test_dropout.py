"""Training dropout: attention-probability and hidden rates are set on the real MiniLM's modules."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from rag_factory.models.training.dropout import set_training_dropout
from rag_factory.models.training.sentence_models import load_sentence_transformer


def _rates(model: torch.nn.Module) -> dict[str, float]:
    return {name: module.p for name, module in model.named_modules() if isinstance(module, torch.nn.Dropout)}


def _train_mode_outputs(model: torch.nn.Module, features: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
    model.train()
    torch.manual_seed(0)
    first = model(dict(features))["sentence_embedding"]
    second = model(dict(features))["sentence_embedding"]
    return first, second


def test_attention_rate_reaches_only_the_attention_probabilities(minilm_dir: Path) -> None:
    model = load_sentence_transformer(minilm_dir, "cpu")
    change = set_training_dropout(model, attention=0.0, hidden=None)
    rates = _rates(model)
    attention = {name: p for name, p in rates.items() if name.endswith("attention.self.dropout")}
    assert change.attention == len(attention) == 6 and change.hidden == 0
    assert set(attention.values()) == {0.0}
    # Embedding and layer-output dropout keep MiniLM's 0.1.
    assert {p for name, p in rates.items() if name not in attention} == {0.1}
    # The config is not touched, so a saved model records the base's rates.
    assert model[0].auto_model.config.attention_probs_dropout_prob == pytest.approx(0.1)


def test_no_dropout_makes_training_mode_deterministic(minilm_dir: Path) -> None:
    model = load_sentence_transformer(minilm_dir, "cpu")
    features = model.preprocess(["hard negatives for scientific claims", "dropout off"])
    first, second = _train_mode_outputs(model, features)
    assert not torch.allclose(first, second)  # MiniLM's own dropout is active in training mode

    change = set_training_dropout(model, attention=0.0, hidden=0.0)
    assert change.hidden == 13
    first, second = _train_mode_outputs(model, features)
    assert torch.equal(first, second)


def test_a_model_without_attention_modules_warns_and_still_sets_hidden(caplog: pytest.LogCaptureFixture) -> None:
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Dropout(0.3))
    with caplog.at_level(logging.WARNING, logger="rag_factory.models.training.dropout"):
        change = set_training_dropout(model, attention=0.0, hidden=0.2)
    assert change.attention == 0 and change.hidden == 1
    assert model[1].p == pytest.approx(0.2)
    assert "no attention dropout found in Sequential" in caplog.text


def test_none_leaves_every_rate_as_loaded(minilm_dir: Path) -> None:
    model = load_sentence_transformer(minilm_dir, "cpu")
    before = _rates(model)
    assert set_training_dropout(model, attention=None, hidden=None).attention == 0
    assert _rates(model) == before


class RotaryAttention(torch.nn.Module):
    """Shaped like newer attention classes, which pass a float rate to the attention function."""

    def __init__(self) -> None:
        super().__init__()
        self.attention_dropout = 0.1


def test_a_float_attention_rate_is_set_too() -> None:
    model = torch.nn.Sequential(RotaryAttention(), torch.nn.Dropout(0.1))
    change = set_training_dropout(model, attention=0.0, hidden=None)
    assert change.attention == 1 and model[0].attention_dropout == 0.0
    assert model[1].p == pytest.approx(0.1)
