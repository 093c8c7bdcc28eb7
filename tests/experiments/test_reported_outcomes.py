"""Outcomes clients report cannot be forged (issue 18, item 10): one per request, client metrics only, bounded.

The router and the rollout manager run over the SQLite store the sidecar uses; each test serves real
routed requests through ``ABRouter.on_served`` (the engine's listener), then reports outcomes for them.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from rag_factory.errors import AlreadyExistsError, InvalidArgumentError
from rag_factory.experiments.framework import ABTestingFramework
from rag_factory.experiments.limits import MAX_METRICS_PER_EXPERIMENT
from rag_factory.experiments.rollout import RolloutManager, RolloutPlan
from rag_factory.experiments.sqlite_store import SQLiteExperimentStore
from rag_factory.models.embedding import EmbeddingModelMetadata, ModelRegistry
from rag_factory.serving.ab_router import ABRouter
from rag_factory.serving.engine import EmbedCall, EmbedOutcome, ServedBy
from rag_factory.storage import database_path

PLAN = RolloutPlan(steps=[0.5, 1.0], min_samples_per_step=10_000, min_step_duration_s=0.0)


@pytest.fixture
def router(tmp_path: Path) -> Iterator[ABRouter]:
    """A router over a running experiment "canary": mini@production (mini-1) against mini-2, at 50%."""
    registry = ModelRegistry(tmp_path / "registry")
    for model_id, version in (("mini-1", "1.0.0"), ("mini-2", "2.0.0")):
        registry.register_model(
            EmbeddingModelMetadata(
                model_id=model_id, model_name="mini", version=version, format="sentence_transformers",
                embedding_dim=8, max_seq_length=16,
            )
        )  # fmt: skip
    registry.set_alias("mini", "production", "mini-1")
    store = SQLiteExperimentStore(database_path(registry.path))
    manager = RolloutManager(registry, ABTestingFramework(store=store, seed=0), store)
    manager.start("canary", "mini", "mini-2", plan=PLAN)
    yield ABRouter(manager)
    store.close()
    registry.close()


def _serve(router: ABRouter, request_id: str, key: str = "user-1") -> str:
    """Route and "serve" one request for mini@production; returns the model that served it."""
    route = router.route("mini", key)
    served = ServedBy(
        model_id=route.model, model_name="mini", version="", backend="", precision="", requested_model="mini",
        variant=route.variant, experiment=route.experiment,
    )  # fmt: skip
    router.on_served(EmbedOutcome(np.zeros((1, 8), np.float32), served, request_id, 0.0, 1.0, 2.0, 1), EmbedCall(["q"]))
    return route.model


def _samples(router: ABRouter) -> int:
    return len(router.rollouts.store.load_results("canary"))


def _key_served_by(router: ABRouter, model_id: str) -> str:
    return next(f"user-{i}" for i in range(1000) if router.route("mini", f"user-{i}").model == model_id)


def test_a_request_id_reported_again_is_refused_and_counts_once(router: ABRouter) -> None:
    """The same request id 50 times used to count 50 samples."""
    _serve(router, "r-1")
    router.record_outcome("r-1", {"engagement": 1.0})
    before = _samples(router)

    for _ in range(50):
        with pytest.raises(AlreadyExistsError, match="'r-1' was already recorded; each request counts once"):
            router.record_outcome("r-1", {"engagement": 1.0})

    assert _samples(router) == before


@pytest.mark.parametrize("name", ["error", "latency_ms", "ERROR", "Latency_MS"])
def test_a_metric_the_server_measures_cannot_be_reported(router: ABRouter, name: str) -> None:
    """A client-sent {"error": 1} used to roll a healthy experiment back."""
    _serve(router, "r-1")
    before = _samples(router)

    with pytest.raises(InvalidArgumentError, match=f"metric '{name}' is measured by the server"):
        router.record_outcome("r-1", {"engagement": 1.0, name: 1.0})

    assert _samples(router) == before
    router.record_outcome("r-1", {"engagement": 1.0})  # the refused report did not use up the request


@pytest.mark.parametrize(
    ("metrics", "fragment"),
    [
        ({"accuracy": math.nan}, "'accuracy' must be a finite number"),
        ({"accuracy": -math.inf}, "'accuracy' must be a finite number"),
        ({"accuracy": 1e300}, "'accuracy' must be within ±1e+09"),
        ({"x" * 65: 1.0}, "metric name 'xxxx"),
        ({"with space": 1.0}, "metric name 'with space' is not valid"),
        ({"zero\u200bwidth": 1.0}, "is not valid"),
        ({f"m{i}": 1.0 for i in range(17)}, "at most 16 metrics"),
    ],
    ids=["nan", "minus-inf", "1e300", "long-name", "space", "zero-width", "17-metrics"],
)
def test_out_of_bounds_metrics_are_refused_and_nothing_is_recorded(
    router: ABRouter, metrics: dict[str, float], fragment: str
) -> None:
    _serve(router, "r-1")
    before = _samples(router)

    with pytest.raises(InvalidArgumentError) as caught:
        router.record_outcome("r-1", metrics)

    assert fragment in caught.value.message and len(caught.value.message) < 300
    assert _samples(router) == before


def test_an_experiment_holds_a_bounded_number_of_metric_names(router: ABRouter) -> None:
    """Each new name is a column of every stored outcome and one more test in every analysis."""
    for i in range(4):
        _serve(router, f"r-{i}")
    assert set(router.rollouts.store.load_results("canary").metrics) == {"latency_ms", "error"}
    names = [f"metric_{i}" for i in range(MAX_METRICS_PER_EXPERIMENT - 2)]
    for i, start in enumerate(range(0, len(names), 10)):
        router.record_outcome(f"r-{i}", dict.fromkeys(names[start : start + 10], 1.0))

    with pytest.raises(InvalidArgumentError, match=f"holds at most {MAX_METRICS_PER_EXPERIMENT}"):
        router.record_outcome("r-3", {"one_more": 1.0})
    router.record_outcome("r-3", {"metric_0": 0.0})  # existing names are still welcome


@pytest.mark.parametrize(
    ("request_id", "fragment"),
    [
        ("", "request_id is required"),
        ("r" * 129, "(129 characters) is not a valid request id"),
        ("r" * 1_000_000, "(1,000,000 characters) is not a valid request id"),
        ("new\nline", "is not a valid request id"),
        ("caf\u00e9", "is not a valid request id"),
    ],
    ids=["empty", "129-characters", "1MB", "control-character", "non-ascii"],
)
def test_request_ids_are_bounded_printable_ascii(router: ABRouter, request_id: str, fragment: str) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        router.record_outcome(request_id, {"engagement": 1.0})
    assert fragment in caught.value.message and len(caught.value.message) < 300


def test_an_odd_request_id_is_not_stored_but_its_request_still_counts(router: ABRouter) -> None:
    """1 MB request ids used to grow the database 30-fold."""
    huge = "r" * 1_000_000
    before = _samples(router)
    _serve(router, huge)
    assert router.rollouts.store.find_request(huge) is None
    assert _samples(router) == before + 1  # its latency is the server's own measurement


def test_a_reused_request_id_keeps_the_arm_that_served_it_first(router: ABRouter) -> None:
    """A reused request id used to overwrite its assignment, moving the reported outcome to the other arm."""
    first = _serve(router, "reused", key=_key_served_by(router, "mini-1"))
    second = _serve(router, "reused", key=_key_served_by(router, "mini-2"))

    assignment = router.record_outcome("reused", {"engagement": 1.0})

    assert (first, second, assignment.model_id) == ("mini-1", "mini-2", "mini-1")
