"""Evaluation options: one object for every evaluating function, its fields also taken as keywords."""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path

import pytest

from rag_factory.errors import DatasetError
from rag_factory.models.evaluation.comparison import compare_models, cross_domain
from rag_factory.models.evaluation.evaluator import evaluate
from rag_factory.models.evaluation.options import EvaluationKeywords, EvaluationOptions, metric_names


def test_the_keywords_are_the_fields_of_the_options() -> None:
    fields = {field.name for field in dataclasses.fields(EvaluationOptions)}
    assert set(typing.get_type_hints(EvaluationKeywords)) == fields


def test_k_values_add_each_metric_at_each_cut_off() -> None:
    """Names given with @k stay; every base metric is added at every extra k, without duplicates."""
    assert metric_names(["ndcg@10", "recall"], [1, 10]) == ["ndcg@10", "recall", "ndcg@1", "recall@1", "recall@10"]


@pytest.mark.parametrize(
    "call",
    [
        lambda data, options, **kw: evaluate("no-model-needed", data, options, **kw),
        lambda data, options, **kw: compare_models("a", "b", data, options, **kw),
        lambda data, options, **kw: cross_domain("a", [data], options, **kw),
    ],
    ids=["evaluate", "compare_models", "cross_domain"],
)
def test_keywords_replace_the_fields_of_the_given_options(tiny_dataset: Path, call: typing.Any) -> None:
    """The split comes from the options unless a keyword names another; both fail before any model loads."""
    options = EvaluationOptions(split="no-such-split", cache_dir=None)
    with pytest.raises(DatasetError, match="split 'no-such-split'"):
        call(tiny_dataset, options)
    with pytest.raises(DatasetError, match="split 'other-split'"):
        call(tiny_dataset, options, split="other-split")
