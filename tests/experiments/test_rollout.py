"""RolloutManager over the in-memory store: ramps, promotion, automatic rollback, restarts and routed outcomes."""

from __future__ import annotations

import math
import re
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rag_factory.errors import FailedPreconditionError, InvalidArgumentError
from rag_factory.experiments.arms import CANDIDATE, CONTROL, arm_of_served_variant, served_variant
from rag_factory.experiments.framework import ABTestingFramework
from rag_factory.experiments.memory_store import InMemoryExperimentStore
from rag_factory.experiments.rollout import RolloutManager, RolloutPlan, RolloutState
from rag_factory.hooks import RolloutEvent, hookimpl
from rag_factory.hooks.manager import build_plugin_manager
from rag_factory.models.embedding import EmbeddingModelMetadata, ModelRegistry
from rag_factory.models.embedding.models import ABTestConfig
from rag_factory.serving.ab_router import ABRouter
from rag_factory.serving.engine import EmbedCall, EmbedOutcome, ServedBy
from rag_factory.storage import database_path

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


# -- issue 18, item 11: arms of the experiment's own model, and experiments that end when an arm breaks --


def _register(registry: ModelRegistry, model_id: str, version: str, name: str = "mini") -> None:
    registry.register_model(
        EmbeddingModelMetadata(
            model_id=model_id, model_name=name, version=version, format="sentence_transformers",
            embedding_dim=8, max_seq_length=16,
        )
    )  # fmt: skip


def test_a_candidate_of_another_model_name_is_refused(manager: RolloutManager, registry: ModelRegistry) -> None:
    """Issue 18, item 11: such a candidate ramped, then its promotion failed on every tick."""
    _register(registry, "other-1", "1.0.0", name="other")
    with pytest.raises(InvalidArgumentError, match="'other-1' is a version of 'other', not of 'mini'"):
        manager.start("canary", "mini", "other-1", plan=PLAN)
    assert manager.states() == [] and manager.framework.active_tests == {}


@pytest.mark.parametrize(
    ("break_arm", "status", "fragment"),
    [
        (lambda r: r.deprecate("mini-2", reason="bad recall"), "rolled_back", "candidate 'mini-2' was deprecated"),
        (lambda r: r.delete_model("mini-2"), "rolled_back", "candidate 'mini-2' was deleted"),
        (lambda r: r.deprecate("mini-1"), "stopped", "control 'mini-1' was deprecated"),
        (lambda r: (_register(r, "mini-3", "3.0.0"), r.set_alias("mini", "production", "mini-3")), "stopped",
         "moved to 'mini-3' by hand"),
    ],
    ids=["candidate-deprecated", "candidate-deleted", "control-deprecated", "alias-moved"],
)  # fmt: skip
def test_an_arm_that_can_no_longer_serve_ends_the_experiment_on_the_next_tick(
    manager: RolloutManager, registry: ModelRegistry, recorder: RolloutRecorder,
    break_arm: Callable[[ModelRegistry], object], status: str, fragment: str,
) -> None:  # fmt: skip
    """Issue 18, item 11: the experiment stayed RAMPING forever while users routed to the arm got errors.

    A broken candidate is rolled back (the alias keeps serving the control); a broken control, or an
    alias moved by hand, stops the experiment and leaves the alias as the registry has it.
    """
    manager.start("canary", "mini", "mini-2", plan=PLAN)
    alias_before = registry.get_alias("mini", "production").model_id
    break_arm(registry)

    state = manager.tick("canary")

    assert (state.status, state.split) == (status, 0.0) and fragment in state.reason
    assert manager.active_for("mini", "production") is None and "canary" not in manager.framework.active_tests
    assert ABRouter(manager).route("mini", "user-1").variant == ""  # no request is routed to an arm any more
    assert recorder.events[-1].action == status and fragment in recorder.events[-1].reason
    if status == "rolled_back":
        assert registry.get_alias("mini", "production").model_id == alias_before == "mini-1"
    assert manager.tick("canary") == state  # ended once


def _legacy_experiment(store: InMemoryExperimentStore, candidate: str, *, plan: str | None = None) -> None:
    """An experiment as older code stored it, before today's checks at start."""
    ABTestingFramework(store=store).start_test(
        ABTestConfig(test_name="old", model_a_id="mini-1", model_b_id=candidate, traffic_split=1.0, minimum_samples=1)
    )
    state = RolloutState(
        test_name="old", model_name="mini", alias="production", model_a_id="mini-1", model_b_id=candidate,
        plan=PLAN, step_index=2, step_started_at=0.0,
    )  # fmt: skip
    stored = state.model_dump_json()
    if plan is not None:
        stored = stored.replace(PLAN.model_dump_json(), plan)
    store.save_rollout("old", stored)


def test_a_stored_experiment_whose_candidate_is_of_another_model_is_rolled_back_not_promoted_forever(
    registry: ModelRegistry, store: InMemoryExperimentStore
) -> None:
    """Issue 18, item 11: promotion of such a candidate failed on every tick, users still split."""
    _register(registry, "other-1", "1.0.0", name="other")
    _legacy_experiment(store, "other-1")
    manager = RolloutManager(registry, ABTestingFramework(store=store), store)

    state = manager.tick("old")

    assert state.status == "rolled_back" and "'other-1' is a version of 'other', not of 'mini'" in state.reason
    assert registry.get_alias("mini", "production").model_id == "mini-1"


def test_a_promotion_that_fails_rolls_back_once_instead_of_failing_on_every_tick(
    manager: RolloutManager, registry: ModelRegistry, recorder: RolloutRecorder
) -> None:
    """Issue 18, item 11: a promotion that raised was retried (and failed) on every tick, forever.

    The alias name is one older code accepted and set_alias now refuses, written straight into the
    registry database, so the move to the candidate fails for a reason the arm checks do not see.
    """
    with sqlite3.connect(database_path(registry.path)) as conn:
        conn.execute(
            "INSERT INTO alias_stack (model_name, alias, position, model_id) VALUES ('mini', 'eu@1', 0, 'mini-1')"
        )
    manager.start("canary", "mini", "mini-2", alias="eu@1", plan=PLAN, minimum_samples=20)
    manager.ramp("canary", 1.0)
    _serve_both_arms(manager)

    state = manager.tick("canary")

    assert state.status == "rolled_back" and "promotion failed (InvalidArgumentError" in state.reason
    assert manager.tick_all() == [] and [e.action for e in recorder.events][-1:] == ["rolled_back"]
    assert registry.get_alias("mini", "eu@1").model_id == "mini-1"


def test_one_experiment_whose_check_fails_does_not_keep_the_others_from_being_checked(
    manager: RolloutManager, registry: ModelRegistry, store: InMemoryExperimentStore
) -> None:
    # A rollout state without its experiment record, on healthy arms: every check of it fails.
    _register(registry, "mini-3", "3.0.0")
    registry.set_alias("mini", "candidate", "mini-1")
    orphan = RolloutState(
        test_name="orphan", model_name="mini", alias="candidate", model_a_id="mini-1", model_b_id="mini-3",
        plan=PLAN, step_started_at=0.0,
    )  # fmt: skip
    store.save_rollout("orphan", orphan.model_dump_json())
    manager.start("canary", "mini", "mini-2", plan=PLAN, minimum_samples=20)
    registry.deprecate("mini-2")

    checked = manager.tick_all()

    assert [(s.test_name, s.status) for s in checked] == [("canary", "rolled_back")]
    assert manager.state("orphan").status == "ramping"


# -- issue 18, item 3 (leftover): plans stored by older code with null fields -------------------------


def test_a_ramping_experiment_stored_with_a_null_plan_field_is_rolled_back_with_the_reason(
    registry: ModelRegistry, store: InMemoryExperimentStore, recorder: RolloutRecorder
) -> None:
    """Issue 18, item 3: an infinite step duration was stored as null; every A/B call then failed.

    Loading it with the default (300 s) would start advancing on a schedule nobody chose, so the
    experiment is rolled back with the reason, and the alias keeps serving the control.
    """
    broken = PLAN.model_dump_json().replace('"min_step_duration_s":0.0', '"min_step_duration_s":null')
    _legacy_experiment(store, "mini-2", plan=broken)
    hooks = build_plugin_manager("sidecar", load_entry_points=False, plugins=(recorder,))

    manager = RolloutManager(registry, ABTestingFramework(store=store), store, hooks=hooks)

    state = manager.state("old")
    assert (state.status, state.split) == ("rolled_back", 0.0)
    assert "min_step_duration_s" in state.reason and state.plan.min_step_duration_s == 300.0
    assert "old" not in manager.framework.active_tests and [e.action for e in recorder.events] == ["rolled_back"]
    again = RolloutManager(registry, ABTestingFramework(store=store), store, hooks=hooks)
    assert again.state("old") == state and len(recorder.events) == 1  # repaired once, readable since


def test_a_stored_state_that_cannot_be_read_at_all_is_skipped_and_the_others_load(
    manager: RolloutManager, registry: ModelRegistry, store: InMemoryExperimentStore
) -> None:
    manager.start("canary", "mini", "mini-2", plan=PLAN)
    store.save_rollout("garbage", "{not json")

    again = RolloutManager(registry, ABTestingFramework(store=store), store)

    assert [s.test_name for s in again.states()] == ["canary"]


def test_a_rollback_reason_is_one_bounded_line_since_it_is_stored_and_returned_ever_after(
    manager: RolloutManager,
) -> None:
    manager.start("canary", "mini", "mini-2", plan=PLAN)
    for reason in ("x" * 100_000, "two\nlines"):
        with pytest.raises(InvalidArgumentError, match="one line of at most 500") as caught:
            manager.rollback("canary", reason)
        assert len(caught.value.message) < 300
    assert manager.rollback("canary", "recall dropped").reason == "recall dropped"


# -- issue 18: settings no experiment can start with ------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"minimum_samples": 0}, "minimum_samples"),
        ({"minimum_samples": 10**12}, "minimum_samples"),
        ({"statistical_threshold": math.nan}, "statistical_threshold"),
        ({"statistical_threshold": math.inf}, "statistical_threshold"),
        ({"initial_split": math.nan}, "traffic split"),
        ({"test_name": ""}, "experiment name"),
        ({"test_name": "x" * 20_000}, "(20,000 characters)"),
        ({"test_name": "bell\x07"}, "experiment name"),
    ],
    ids=["no-samples", "10^12-samples", "nan-threshold", "inf-threshold", "nan-split", "empty-name", "long-name",
         "control-character"],
)  # fmt: skip
def test_settings_out_of_range_are_refused_and_nothing_starts(
    manager: RolloutManager, fields: dict[str, Any], named: str
) -> None:
    arguments: dict[str, Any] = {"test_name": "canary", **fields}
    with pytest.raises(InvalidArgumentError, match=re.escape(named)) as caught:
        manager.start(arguments.pop("test_name"), "mini", "mini-2", plan=PLAN, **arguments)
    assert len(caught.value.message) < 400  # a long name is not echoed
    assert manager.states() == []
