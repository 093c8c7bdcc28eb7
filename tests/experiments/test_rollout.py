"""RolloutManager over the in-memory store: ramps, promotion, automatic rollback, restarts and routed outcomes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from rag_factory.errors import FailedPreconditionError, InvalidArgumentError
from rag_factory.experiments.arms import CANDIDATE, CONTROL, arm_of_served_variant, served_variant
from rag_factory.experiments.framework import ABTestingFramework
from rag_factory.experiments.memory_store import InMemoryExperimentStore
from rag_factory.experiments.rollout import RolloutManager, RolloutPlan
from rag_factory.hooks import RolloutEvent, hookimpl
from rag_factory.hooks.manager import build_plugin_manager
from rag_factory.models.embedding import EmbeddingModelMetadata, ModelRegistry
from rag_factory.serving.ab_router import ABRouter
from rag_factory.serving.engine import EmbedCall, EmbedOutcome, ServedBy

PLAN = RolloutPlan(steps=[0.1, 0.5, 1.0], min_samples_per_step=20, min_step_duration_s=0.0)


class RolloutRecorder:
    """A real observer plugin that keeps every rollout event."""

    def __init__(self) -> None:
        self.events: list[RolloutEvent] = []

    @hookimpl
    def rag_factory_on_rollout(self, event: RolloutEvent) -> None:
        self.events.append(event)


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[ModelRegistry]:
    """mini@1.0.0 (id mini-1, production) and mini@2.0.0 (id mini-2), registered without artifacts."""
    registry = ModelRegistry(tmp_path / "registry")
    for model_id, version in (("mini-1", "1.0.0"), ("mini-2", "2.0.0")):
        registry.register_model(
            EmbeddingModelMetadata(
                model_id=model_id, model_name="mini", version=version, format="sentence_transformers",
                embedding_dim=8, max_seq_length=16,
            )
        )  # fmt: skip
    registry.set_alias("mini", "production", "mini-1")
    yield registry
    registry.close()


@pytest.fixture
def store() -> InMemoryExperimentStore:
    return InMemoryExperimentStore()


@pytest.fixture
def recorder() -> RolloutRecorder:
    return RolloutRecorder()


@pytest.fixture
def manager(registry: ModelRegistry, store: InMemoryExperimentStore, recorder: RolloutRecorder) -> RolloutManager:
    hooks = build_plugin_manager("sidecar", load_entry_points=False, plugins=(recorder,))
    return RolloutManager(registry, ABTestingFramework(store=store, seed=0), store, hooks=hooks)


def _serve_both_arms(manager: RolloutManager, *, b_errors: float = 0.0, n: int = 30) -> None:
    """Record ``n`` served requests per arm, alike in latency and engagement."""
    rng = np.random.default_rng(len(manager.store.load_results("canary")))
    latency, engagement = rng.normal(10.0, 1.0, n), rng.integers(0, 2, n).astype(float)
    framework = manager.framework
    framework.record_results(
        "canary", "mini-1", {"latency_ms": latency, "error": np.zeros(n), "engagement": engagement}
    )
    framework.record_results(
        "canary", "mini-2", {"latency_ms": latency, "error": np.full(n, b_errors), "engagement": engagement}
    )


def test_a_healthy_candidate_ramps_step_by_step_and_is_promoted(
    manager: RolloutManager, registry: ModelRegistry, recorder: RolloutRecorder
) -> None:
    state = manager.start("canary", "mini", "mini-2", plan=PLAN, minimum_samples=20)
    assert (state.model_a_id, state.model_b_id, state.split) == ("mini-1", "mini-2", 0.1)
    assert manager.active_for("mini", "production") == state
    for expected in (0.5, 1.0):
        _serve_both_arms(manager)
        state = manager.tick("canary")
        assert (state.status, state.split) == ("ramping", expected)
        assert manager.framework.active_tests["canary"].traffic_split == expected
    _serve_both_arms(manager)
    assert manager.tick("canary").status == "promoted"
    assert registry.get_alias("mini", "production").model_id == "mini-2"
    assert "canary" not in manager.framework.active_tests
    assert [e.action for e in recorder.events] == ["started", "ramped", "ramped", "promoted"]


def test_a_step_is_held_until_it_has_enough_candidate_requests(manager: RolloutManager) -> None:
    manager.start("canary", "mini", "mini-2", plan=PLAN, minimum_samples=20)
    _serve_both_arms(manager, n=10)
    assert manager.tick("canary").split == 0.1


def test_a_failing_candidate_is_rolled_back_by_the_error_rate(
    manager: RolloutManager, registry: ModelRegistry, recorder: RolloutRecorder
) -> None:
    manager.start("canary", "mini", "mini-2", plan=PLAN, minimum_samples=20)
    _serve_both_arms(manager, b_errors=1.0)
    state = manager.tick("canary")
    assert (state.status, state.split) == ("rolled_back", 0.0)
    assert "error rate" in state.reason
    assert registry.get_alias("mini", "production").model_id == "mini-1"
    assert manager.active_for("mini", "production") is None
    assert recorder.events[-1].action == "rolled_back"


def test_a_new_manager_on_the_same_store_continues_and_can_roll_a_promotion_back(
    manager: RolloutManager, registry: ModelRegistry, store: InMemoryExperimentStore
) -> None:
    manager.start("canary", "mini", "mini-2", plan=PLAN)
    manager.promote("canary")
    again = RolloutManager(registry, ABTestingFramework(store=store), store)
    assert again.state("canary") == manager.state("canary")
    assert again.rollback("canary").status == "rolled_back"
    assert registry.get_alias("mini", "production").model_id == "mini-1"


def test_a_second_experiment_on_the_same_alias_is_refused(manager: RolloutManager) -> None:
    manager.start("canary", "mini", "mini-2", plan=PLAN)
    with pytest.raises(FailedPreconditionError, match="'canary' is already running on mini@production"):
        manager.start("other", "mini", "mini-2", plan=PLAN)


def test_the_framework_must_keep_its_experiments_in_the_managers_store(
    registry: ModelRegistry, store: InMemoryExperimentStore
) -> None:
    with pytest.raises(InvalidArgumentError, match="rollout manager's store"):
        RolloutManager(registry, ABTestingFramework(), store)


def test_routed_requests_and_their_reported_outcomes_reach_the_arm_that_served_them(
    manager: RolloutManager, store: InMemoryExperimentStore
) -> None:
    manager.start("canary", "mini", "mini-2", plan=PLAN)
    manager.ramp("canary", 0.5)
    router = ABRouter(manager)
    routes = {f"user-{i}": router.route("mini", f"user-{i}") for i in range(200)}
    assert {r.variant for r in routes.values()} == {served_variant(CONTROL), served_variant(CANDIDATE)}
    assert all(r.model == ("mini-2" if r.variant == served_variant(CANDIDATE) else "mini-1") for r in routes.values())
    assert router.route("mini", "user-7") == routes["user-7"]  # sticky per key
    route = routes["user-7"]
    served = ServedBy(
        model_id=route.model, model_name="mini", version="", backend="", precision="", requested_model="mini",
        variant=route.variant, experiment=route.experiment,
    )  # fmt: skip
    outcome = EmbedOutcome(np.zeros((1, 8), np.float32), served, "r-7", 0.0, 1.0, 2.0, 1)
    router.on_served(outcome, EmbedCall(texts=["q"], model="mini"))
    assignment = router.record_outcome("r-7", {"engagement": 1.0})
    assert (assignment.arm, assignment.model_id) == (arm_of_served_variant(route.variant), route.model)
    entries = manager.framework.results["canary"]
    assert [(e["variant"], e["model_id"]) for e in entries] == [(assignment.arm, route.model)] * 2
    assert [sorted(e["metrics"]) for e in entries] == [["error", "latency_ms"], ["engagement"]]
