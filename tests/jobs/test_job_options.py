"""A job's options come from a network client: each mistake is an InvalidArgumentError that quotes little.

Issue 18, item 13: NaN, infinity and absurd sizes in job options were accepted (a learning rate of inf,
a batch of 10^12 rows, 10^18 epochs) or failed later as INTERNAL; unknown option names were dropped
silently and stored whole; long values were echoed into error trailers.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from rag_factory.errors import InvalidArgumentError
from rag_factory.jobs.fine_tune_job import job_config


def _config_error(tmp_path: Path, **options: Any) -> str:
    with pytest.raises(InvalidArgumentError) as caught:
        job_config({"data_dir": str(tmp_path), **options}, tmp_path / "registry")
    return caught.value.message


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("learning_rate", math.nan),
        ("learning_rate", math.inf),
        ("learning_rate", 5.0),
        ("weight_decay", math.inf),
        ("hardness_strength", math.nan),
        ("epochs", math.inf),
        ("epochs", 1e18),
        ("batch_size", 1e12),
        ("train_max_seq_length", 10**9),
        ("validation_corpus_size", 1e15),
        ("seed", -1),
        ("seed", 2**64),
        ("search", {"learning_rate": [math.nan]}),
        ("search", {"epochs": [10**6]}),
    ],
    ids=lambda value: str(value)[:20],
)
def test_numbers_that_are_not_finite_or_out_of_range_are_refused(tmp_path: Path, option: str, value: Any) -> None:
    assert option in _config_error(tmp_path, **{option: value})


def test_an_unknown_option_is_refused_and_named(tmp_path: Path) -> None:
    message = _config_error(tmp_path, epoch=1)  # "epochs" misspelt: once silently ignored

    assert "unknown fine-tuning option(s) 'epoch'" in message


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("strategy", "x" * 20_000),
        ("base_model", "m" * 201),
        ("corpus", "/data/" + "d" * 5000),
        ("tags", ["t" * 5000]),
        ("tags", ["t"] * 1000),
        ("teacher_model", "model\x00name"),
        ("x" * 20_000, 1),
    ],
    ids=["long-strategy", "long-base-model", "long-path", "long-tag", "many-tags", "nul", "long-option-name"],
)
def test_long_or_nul_values_are_refused_without_being_echoed(tmp_path: Path, option: str, value: Any) -> None:
    message = _config_error(tmp_path, **{option: value})

    assert len(message) < 300


def test_a_sensible_spec_is_accepted(tmp_path: Path) -> None:
    config = job_config(
        {"data_dir": str(tmp_path), "epochs": 2.0, "learning_rate": 2e-5, "batch_size": 16, "tags": ["nightly"]},
        tmp_path / "registry",
    )

    assert (config.epochs, config.batch_size, config.data) == (2, 16, tmp_path)
