"""How an evaluation runs (``EvaluationOptions``), and the metric names it computes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

import pluggy

from rag_factory.errors import InvalidArgumentError
from rag_factory.models.embedding.loader import CustomModelLoader
from rag_factory.models.embedding.registry import ModelRegistry
from rag_factory.models.evaluation.embedding_cache import DEFAULT_EMBEDDING_CACHE_DIR
from rag_factory.models.evaluation.model_resolution import BackendChoice
from rag_factory.models.evaluation.progress import ProgressCallback
from rag_factory.retrieval.metrics import DEFAULT_METRICS, parse_metric


@dataclass(frozen=True)
class EvaluationOptions:
    """Everything about an evaluation except the model and the dataset; the defaults suit most runs.

    ``evaluate``, ``evaluate_detailed``, the comparisons and ``cross_domain`` take one of these, or
    its fields as keywords (which replace the given options' fields).

    Attributes:
        split: qrels split to evaluate.
        registry: Registry for references; None evaluates paths and hub ids only.
        loader: Model loader (and cache); a new one if None.
        metrics: Metric names such as ``"ndcg@10"`` or ``"map"``; see ``retrieval_metrics.parse_metric``.
        k_values: Extra cut-offs: each base metric of ``metrics`` is also computed at each k.
        top_k: Documents retrieved per query (raised to the largest k asked for).
        backend: ``"fastest"`` (int8 ONNX where the model has it), ``"native"`` or ``"int8"``.
        cache_dir: Corpus-vector cache; None disables it.
        refresh_cache: Re-embed the corpus and overwrite the cache.
        on_progress: Called with an ``EvaluationProgress`` as stages advance.
        allow_dangling_qrels: Drop judgements naming unknown ids instead of refusing the dataset.
        plugin_manager: Plugins asked for custom metrics; default: the built-ins and entry points.
    """

    split: str = "test"
    registry: ModelRegistry | None = None
    loader: CustomModelLoader | None = None
    metrics: Sequence[str] = DEFAULT_METRICS
    k_values: Sequence[int] = ()
    top_k: int = 100
    backend: BackendChoice = "fastest"
    cache_dir: str | Path | None = DEFAULT_EMBEDDING_CACHE_DIR
    refresh_cache: bool = False
    on_progress: ProgressCallback | None = None
    allow_dangling_qrels: bool = False
    plugin_manager: pluggy.PluginManager | None = None


class EvaluationKeywords(TypedDict, total=False):
    """The fields of :class:`EvaluationOptions` as keyword arguments (a test keeps the two in step)."""

    split: str
    registry: ModelRegistry | None
    loader: CustomModelLoader | None
    metrics: Sequence[str]
    k_values: Sequence[int]
    top_k: int
    backend: BackendChoice
    cache_dir: str | Path | None
    refresh_cache: bool
    on_progress: ProgressCallback | None
    allow_dangling_qrels: bool
    plugin_manager: pluggy.PluginManager | None


def metric_names(metrics: Sequence[str] = DEFAULT_METRICS, k_values: Sequence[int] = ()) -> list[str]:
    """The metric names to compute: ``metrics`` as given, plus each base metric at every k of ``k_values``.

    ``metric_names(["ndcg@10", "recall"], [1, 5])`` gives ``ndcg@10, recall, ndcg@1, ndcg@5, recall@1, recall@5``.

    Raises:
        InvalidArgumentError: An unknown metric, or a k that is not a positive integer.
    """
    for k in k_values:
        if isinstance(k, bool) or not isinstance(k, int) or k <= 0:
            raise InvalidArgumentError(f"k must be a positive integer, got {k!r}")
    names: list[str] = []
    bases: list[str] = []
    for name in metrics:
        base, _ = parse_metric(name)
        names.append(name.strip().lower())
        if base not in bases:
            bases.append(base)
    names += [f"{base}@{k}" for base in bases for k in k_values]
    if not names:
        raise InvalidArgumentError("no metrics asked for, e.g. 'ndcg@10'")
    return list(dict.fromkeys(names))
