"""ABTestingFramework: the seed API, decisions with guardrails and SRM, errors, simulations, storage."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import numpy as np
import pytest

from rag_factory.errors import AlreadyExistsError, FailedPreconditionError, InvalidArgumentError, NotFoundError
from rag_factory.experiments.framework import ABTestingFramework
from rag_factory.experiments.guardrails import Guardrail
from rag_factory.experiments.memory_store import InMemoryExperimentStore
from rag_factory.models.embedding.models import ABTestConfig


def _start(framework: ABTestingFramework, name: str = "t", **fields: Any) -> ABTestingFramework:
    framework.start_test(ABTestConfig(test_name=name, model_a_id="a", model_b_id="b", **fields))
    return framework


def _record_arms(framework: ABTestingFramework, a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    framework.record_results("t", "a", a)
    framework.record_results("t", "b", b)


def test_b_with_lower_latency_and_higher_accuracy_wins() -> None:
    """The seed scenario: 100 + 100 outcomes recorded one by one, both metrics clearly better for B."""
    framework = _start(ABTestingFramework(seed=0))
    rng = np.random.default_rng(0)
    for _ in range(100):
        framework.record_result("t", "a", {"latency": rng.normal(100, 10), "accuracy": rng.normal(0.70, 0.05)})
        framework.record_result("t", "b", {"latency": rng.normal(80, 10), "accuracy": rng.normal(0.80, 0.05)})
    result = framework.analyze_test("t")
    assert result.winner == "model_b"
    assert (result.model_a_samples, result.model_b_samples) == (100, 100)
    assert result.metrics["latency"].improvement > 0  # lower latency counts as better
    assert result.metrics["accuracy"].improvement > 0
    assert result.p_values["accuracy"] < 0.05 and result.p_values["latency"] < 0.05
    low, high = result.confidence_intervals["latency"]
    assert low < high < 0  # B - A latency is negative
    assert "model B" in result.recommendation
    assert result.end_time is not None and result.start_time <= result.end_time


def test_below_minimum_samples_there_is_no_winner() -> None:
    framework = _start(ABTestingFramework(seed=0), minimum_samples=100)
    _record_arms(framework, {"accuracy": np.full(50, 0.5) + np.arange(50) % 2}, {"accuracy": np.full(50, 5.0)})
    result = framework.analyze_test("t")
    assert result.winner == "no_difference"
    assert "not enough data" in result.recommendation.lower()


@pytest.mark.parametrize(
    ("requested", "applied"), [(1.7, 1.0), (-0.2, 0.0), (0.3, 0.3)], ids=["above-1", "below-0", "inside"]
)
def test_gradual_rollout_clamps_and_updates_the_split(requested: float, applied: float) -> None:
    framework = _start(ABTestingFramework())
    assert framework.gradual_rollout("t", requested) == applied
    assert framework.active_tests["t"].traffic_split == applied


def test_rollout_to_full_sends_every_request_to_b() -> None:
    framework = _start(ABTestingFramework())
    framework.gradual_rollout("t", 1.0)
    assert all(framework.should_use_model_b("t", f"user-{i}") for i in range(500))


def test_rollout_to_nan_is_rejected() -> None:
    with pytest.raises(InvalidArgumentError, match="NaN"):
        _start(ABTestingFramework()).gradual_rollout("t", float("nan"))


def test_unknown_test_names_the_active_ones() -> None:
    framework = _start(ABTestingFramework(), "search-v2")
    with pytest.raises(NotFoundError, match="'nope' does not exist; active tests: search-v2"):
        framework.analyze_test("nope")
    with pytest.raises(NotFoundError, match="search-v2"):
        framework.should_use_model_b("nope")


def test_duplicate_test_name_is_rejected() -> None:
    framework = _start(ABTestingFramework())
    with pytest.raises(AlreadyExistsError, match="'t' already exists"):
        _start(framework)


def test_result_for_a_model_outside_the_test_is_rejected() -> None:
    with pytest.raises(InvalidArgumentError, match="expected 'a' \\(A\\) or 'b' \\(B\\)"):
        _start(ABTestingFramework()).record_result("t", "c", {"accuracy": 1.0})


@pytest.mark.parametrize(
    "bad", [float("nan"), float("inf"), float("-inf"), "fast", None], ids=["nan", "inf", "-inf", "text", "none"]
)
def test_non_finite_metric_is_rejected_and_nothing_recorded(bad: object) -> None:
    framework = _start(ABTestingFramework())
    framework.record_result("t", "a", {"accuracy": 1.0})
    with pytest.raises(InvalidArgumentError, match="finite"):
        framework.record_result("t", "a", {"accuracy": 1.0, "latency": bad})  # type: ignore[dict-item]
    assert [r["metrics"] for r in framework.results["t"]] == [{"accuracy": 1.0}]


def test_batch_with_one_non_finite_value_records_nothing() -> None:
    framework = _start(ABTestingFramework())
    with pytest.raises(InvalidArgumentError, match="non-finite"):
        framework.record_results("t", "b", {"accuracy": [1.0, 0.0], "latency": [3.0, np.inf]})
    assert framework.results["t"] == []


def test_results_list_each_outcome_in_recording_order() -> None:
    framework = _start(ABTestingFramework())
    framework.record_result("t", "b", {"latency": 12.0})
    framework.record_result("t", "a", {"accuracy": 1.0, "latency": 20.0})
    entries = framework.results["t"]
    assert [(e["model_id"], e["variant"], e["metrics"]) for e in entries] == [
        ("b", "B", {"latency": 12.0}),
        ("a", "A", {"accuracy": 1.0, "latency": 20.0}),
    ]
    assert all(isinstance(e["timestamp"], datetime) for e in entries)


def test_stopped_test_still_analyses_but_takes_no_traffic_or_results() -> None:
    framework = _start(ABTestingFramework())
    framework.record_result("t", "a", {"accuracy": 1.0})
    framework.stop_test("t")
    assert "t" not in framework.active_tests
    assert framework.analyze_test("t").model_a_samples == 1
    with pytest.raises(NotFoundError, match="not running"):
        framework.should_use_model_b("t")
    with pytest.raises(FailedPreconditionError, match="stopped"):
        framework.record_result("t", "a", {"accuracy": 1.0})


def test_much_slower_p99_vetoes_a_b_that_is_better_on_accuracy() -> None:
    framework = _start(ABTestingFramework(seed=0))
    rng = np.random.default_rng(1)
    latency_b = rng.normal(100, 5, 300)
    latency_b[:9] = 400.0  # 3% of B's requests stall: the mean moves < 10%, the p99 quadruples
    _record_arms(
        framework,
        {"accuracy": rng.normal(0.70, 0.05, 300), "latency": rng.normal(100, 5, 300)},
        {"accuracy": rng.normal(0.80, 0.05, 300), "latency": latency_b},
    )
    analysis = framework.analyze("t")
    assert analysis.result.winner != "model_b"
    assert analysis.decision.verdict == "guardrail_breach"
    breached = [(c.guardrail.metric, c.guardrail.statistic) for c in analysis.decision.guardrail_checks if c.breached]
    assert breached == [("latency", "p99")]
    assert "p99 'latency' breached" in analysis.result.recommendation


def test_custom_guardrail_vetoes_a_b_that_costs_too_much() -> None:
    framework = _start(ABTestingFramework(seed=0, guardrails=[Guardrail(metric="cost")], directions={"cost": "lower"}))
    rng = np.random.default_rng(2)
    _record_arms(
        framework,
        {"accuracy": rng.normal(0.70, 0.05, 200), "cost": rng.normal(1.0, 0.1, 200)},
        {"accuracy": rng.normal(0.80, 0.05, 200), "cost": rng.normal(2.0, 0.1, 200)},
    )
    assert framework.analyze("t").decision.verdict == "guardrail_breach"


def test_sample_ratio_mismatch_blocks_the_decision() -> None:
    framework = _start(ABTestingFramework(seed=0))
    rng = np.random.default_rng(3)
    _record_arms(framework, {"accuracy": rng.normal(0.7, 0.05, 1000)}, {"accuracy": rng.normal(0.8, 0.05, 1300)})
    analysis = framework.analyze("t")
    assert analysis.result.winner == "no_difference"
    assert analysis.decision.verdict == "sample_ratio_mismatch"


def test_a_ramp_does_not_trip_the_sample_ratio_check() -> None:
    framework = _start(ABTestingFramework(seed=0), traffic_split=0.1)
    rng = np.random.default_rng(4)
    _record_arms(framework, {"accuracy": rng.normal(0.7, 0.1, 900)}, {"accuracy": rng.normal(0.7, 0.1, 100)})
    framework.gradual_rollout("t", 0.5)
    _record_arms(framework, {"accuracy": rng.normal(0.7, 0.1, 500)}, {"accuracy": rng.normal(0.7, 0.1, 500)})
    sample_ratio = framework.analyze("t").decision.sample_ratio
    assert sample_ratio is not None and not sample_ratio.flagged


def test_aa_false_winner_rate_is_at_most_8_percent() -> None:
    """200 seeded A/A experiments of 200 + 200 outcomes with accuracy and latency, threshold 0.05."""
    rng = np.random.default_rng(11)
    accuracy, latency = rng.normal(0.7, 0.1, (200, 2, 200)), rng.lognormal(3.0, 0.3, (200, 2, 200))
    winners = []
    for run in range(200):
        framework = _start(ABTestingFramework(seed=run, n_resamples=0), minimum_samples=100)
        _record_arms(
            framework,
            {"accuracy": accuracy[run, 0], "latency": latency[run, 0]},
            {"accuracy": accuracy[run, 1], "latency": latency[run, 1]},
        )
        winners.append(framework.analyze_test("t").winner)
    assert sum(w != "no_difference" for w in winners) / 200 <= 0.08


def test_true_half_sd_effect_with_200_per_arm_wins_at_least_90_percent() -> None:
    rng = np.random.default_rng(12)
    a, b = rng.normal(0.0, 1.0, (200, 200)), rng.normal(0.5, 1.0, (200, 200))  # (run, sample)
    wins = 0
    for run in range(200):
        framework = _start(ABTestingFramework(seed=run, n_resamples=0), metrics_to_track=["accuracy"])
        _record_arms(framework, {"accuracy": a[run]}, {"accuracy": b[run]})
        wins += framework.analyze_test("t").winner == "model_b"
    assert wins / 200 >= 0.9


def test_sequential_p_values_never_increase_across_analyses() -> None:
    framework = _start(ABTestingFramework(seed=0, sequential=True, n_resamples=0), minimum_samples=20)
    rng = np.random.default_rng(13)
    seen: list[float] = []
    for _ in range(8):
        _record_arms(framework, {"accuracy": rng.normal(0.70, 0.1, 20)}, {"accuracy": rng.normal(0.72, 0.1, 20)})
        p = framework.analyze("t").tests["accuracy"].sequential_p
        assert p is not None
        seen.append(p)
    assert seen == sorted(seen, reverse=True)


def test_a_new_framework_on_the_same_store_sees_tests_splits_and_results() -> None:
    store = InMemoryExperimentStore()
    first = _start(ABTestingFramework(store=store))
    first.record_result("t", "b", {"accuracy": 1.0})
    first.gradual_rollout("t", 0.25)
    again = ABTestingFramework(store=store)
    assert again.active_tests["t"].traffic_split == 0.25
    assert [r["model_id"] for r in again.results["t"]] == ["b"]
