"""Training precision: auto is fp32 on CPU, and bf16 autocast covers training only, never the trained model."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from training_helpers import fast_config

from rag_factory.models.training.precision import ResolvedPrecision, autocast, resolve_precision
from rag_factory.models.training.preparation import prepare
from rag_factory.models.training.sentence_models import load_sentence_transformer
from rag_factory.models.training.session import Hyperparameters, train_once
from rag_factory.models.training.strategies import StrategyInputs, pair_rows


@pytest.mark.parametrize(
    ("requested", "expected"), [("auto", "fp32"), ("fp32", "fp32"), ("bf16", "bf16")], ids=["auto", "fp32", "bf16"]
)
def test_on_cpu_auto_is_fp32_and_an_explicit_choice_stands(requested: str, expected: str) -> None:
    assert resolve_precision(requested, "cpu") == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(("precision", "dtype"), [("bf16", torch.bfloat16), ("fp32", torch.float32)])
def test_autocast_runs_matrix_products_in_bf16_only_when_asked(precision: ResolvedPrecision, dtype: object) -> None:
    a, b = torch.randn(4, 8), torch.randn(8, 2)
    with autocast(precision, "cpu"):
        assert (a @ b).dtype == dtype
    assert (a @ b).dtype == torch.float32


@pytest.mark.slow
@pytest.mark.parametrize(
    ("precision", "training_dtype"), [("bf16", torch.bfloat16), ("fp32", torch.float32)], ids=["bf16", "fp32"]
)
def test_training_runs_in_its_precision_and_the_trained_model_encodes_in_fp32(
    precision: ResolvedPrecision, training_dtype: torch.dtype, small_scifact: Path, tmp_path: Path
) -> None:
    config = fast_config(small_scifact, tmp_path, validation_fraction=0.0, precision=precision)
    run = prepare(config, None)
    model = load_sentence_transformer(run.base_path, "cpu")
    dtypes: list[torch.dtype] = []
    layer = model[0].auto_model.encoder.layer[0].intermediate.dense
    layer.register_forward_hook(lambda module, args, output: dtypes.append(output.dtype))
    rows = pair_rows(run.train.subset(run.train.query_ids()[:32]), StrategyInputs())

    train_once(model, run, rows, StrategyInputs(), Hyperparameters(1e-4, 1, 16), tmp_path / "ck", evaluator=None,
               precision=precision)  # fmt: skip
    assert dtypes and set(dtypes) == {training_dtype}

    dtypes.clear()
    vectors = model.encode(["after training the model serves in fp32"])
    assert dtypes == [torch.float32] and vectors.dtype.name == "float32"
