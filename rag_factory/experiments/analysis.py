"""The analysis of an A/B test's arms: every test of each metric, guardrails, SRM and the decision."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike
from pydantic import BaseModel, Field

from rag_factory.experiments.arms import CANDIDATE, CONTROL, NO_DIFFERENCE, result_name
from rag_factory.experiments.guardrails import Guardrail, GuardrailCheck, check_guardrail
from rag_factory.models.embedding.models import Winner
from rag_factory.statistics import (
    CIMethod,
    Direction,
    SampleRatioCheck,
    as_float_array,
    bootstrap_mean_diff_ci,
    holm_adjust,
    mann_whitney_u,
    metric_direction,
    msprt_p_value,
    relative_improvement,
    welch_t_test,
)


class MetricTest(BaseModel):
    """Every test of one metric between the arms."""

    metric: str = Field(description="Metric name.")
    direction: Direction = Field(description="Whether higher or lower values are better.")
    n_a: int = Field(ge=0, description="Values in A.")
    n_b: int = Field(ge=0, description="Values in B.")
    mean_a: float = Field(description="Mean in A.")
    mean_b: float = Field(description="Mean in B.")
    improvement: float = Field(description="Relative improvement of B, positive = better.")
    welch_p: float = Field(description="Two-sided Welch t-test p-value.")
    mann_whitney_p: float = Field(description="Two-sided Mann-Whitney U p-value.")
    sequential_p: float | None = Field(default=None, description="Always-valid mSPRT p-value.")
    p_value: float = Field(description="The p-value used for the decision (sequential or Welch).")
    ci_low: float = Field(description="Lower bound of the CI of mean(B) - mean(A).")
    ci_high: float = Field(description="Upper bound of the CI of mean(B) - mean(A).")
    ci_method: CIMethod = Field(description="'bootstrap' or the large-sample 'normal' interval.")


def compare_metric(
    metric: str,
    a: ArrayLike,
    b: ArrayLike,
    *,
    direction: Direction,
    confidence: float = 0.95,
    n_resamples: int = 2000,
    rng: np.random.Generator | None = None,
    sequential: bool = False,
    previous_sequential_p: float = 1.0,
) -> MetricTest:
    """Run the Welch, Mann–Whitney, bootstrap and (optionally) mSPRT analyses of one metric.

    Args:
        metric: Metric name.
        a: Arm A values (at least two).
        b: Arm B values (at least two).
        direction: Whether higher or lower is better.
        confidence: Coverage of the interval.
        n_resamples: Bootstrap resamples (0: normal interval).
        rng: Generator for the bootstrap.
        sequential: Decide on the always-valid p-value instead of Welch's.
        previous_sequential_p: The always-valid p-value at the previous look.

    Returns:
        All statistics of the metric.
    """
    x, y = as_float_array(a), as_float_array(b)
    mean_a, mean_b = float(x.mean()), float(y.mean())
    welch = welch_t_test(x, y)
    seq = msprt_p_value(x, y, previous=previous_sequential_p) if sequential else None
    ci = bootstrap_mean_diff_ci(x, y, confidence=confidence, n_resamples=n_resamples, rng=rng)
    return MetricTest(
        metric=metric, direction=direction, n_a=x.size, n_b=y.size, mean_a=mean_a, mean_b=mean_b,
        improvement=relative_improvement(mean_a, mean_b, direction), welch_p=welch,
        mann_whitney_p=mann_whitney_u(x, y), sequential_p=seq, p_value=welch if seq is None else seq,
        ci_low=ci.low, ci_high=ci.high, ci_method=ci.method,
    )  # fmt: skip


Verdict = Literal[
    "not_enough_data",
    "sample_ratio_mismatch",
    "guardrail_breach",
    "b_better",
    "a_better",
    "no_significant_difference",
]


class Decision(BaseModel):
    """Which model to keep, and why."""

    winner: Winner = Field(description="The model to keep: 'model_a', 'model_b' or 'no_difference'.")
    verdict: Verdict = Field(description="Machine-readable reason for the winner.")
    primary_metric: str = Field(description="The metric that decides.")
    reasons: list[str] = Field(default_factory=list, description="Human-readable explanation, in order.")
    adjusted_p_values: dict[str, float] = Field(default_factory=dict, description="Holm-adjusted p-values by metric.")
    guardrail_checks: list[GuardrailCheck] = Field(default_factory=list, description="Every harm test.")
    sample_ratio: SampleRatioCheck | None = Field(default=None, description="The SRM check, if run.")


def decide(
    tests: Mapping[str, MetricTest],
    *,
    primary_metric: str,
    minimum_samples: int,
    alpha: float,
    guardrail_checks: Sequence[GuardrailCheck] = (),
    sample_ratio: SampleRatioCheck | None = None,
) -> Decision:
    """Pick a winner from per-metric tests, in this order of precedence.

    1. Fewer than ``minimum_samples`` primary values in either arm: "not enough data", no winner.
    2. A flagged sample-ratio mismatch: the assignment is broken, no winner.
    3. A breached guardrail: B is harmful, A is kept (``"model_a"``), vetoing any B win.
    4. The primary metric's Holm-adjusted p-value (over every metric in ``tests``) is ``<= alpha``:
       B wins if it is better in the metric's direction, A wins if it is worse.
    5. Otherwise no difference.

    Args:
        tests: Per-metric tests; their ``p_value`` (Welch or always-valid) enters the Holm family.
        primary_metric: Name of the deciding metric.
        minimum_samples: Values needed per arm before any winner.
        alpha: Family-wise significance level.
        guardrail_checks: Harm tests of the guardrails.
        sample_ratio: The SRM check.

    Returns:
        The decision with its reasons.
    """
    adjusted = holm_adjust({name: test.p_value for name, test in tests.items()})
    base = {"primary_metric": primary_metric, "adjusted_p_values": adjusted, "sample_ratio": sample_ratio,
            "guardrail_checks": list(guardrail_checks)}  # fmt: skip
    primary = tests.get(primary_metric)
    if primary is None or min(primary.n_a, primary.n_b) < minimum_samples:
        counts = f"{primary.n_a} values in A and {primary.n_b} in B" if primary else "under 2 values in an arm"
        reason = (
            f"not enough data: {primary_metric!r} has {counts}; "
            f"at least {minimum_samples} per arm are needed before a winner is picked"
        )
        return Decision(winner=NO_DIFFERENCE, verdict="not_enough_data", reasons=[reason], **base)
    if sample_ratio is not None and sample_ratio.flagged:
        reason = (
            f"sample ratio mismatch: {sample_ratio.n_a} in A vs {sample_ratio.n_b} in B for an expected "
            f"split of {sample_ratio.expected_split:.3f} (p={sample_ratio.p_value:.2e}); fix the assignment"
        )
        return Decision(winner=NO_DIFFERENCE, verdict="sample_ratio_mismatch", reasons=[reason], **base)
    breaches = [
        f"guardrail {c.guardrail.statistic} {c.guardrail.metric!r} breached: B is worse by "
        f"{c.degradation:.4g} (allowed {c.allowed:.4g}, p={c.p_value:.2e})"
        for c in guardrail_checks
        if c.breached
    ]
    if breaches:
        return Decision(winner=result_name(CONTROL), verdict="guardrail_breach", reasons=breaches, **base)
    p = adjusted[primary_metric]
    summary = (
        f"{primary_metric!r}: A={primary.mean_a:.4g}, B={primary.mean_b:.4g} "
        f"({primary.improvement:+.2%} for B), Holm-adjusted p={p:.2e} vs alpha={alpha}"
    )
    if p <= alpha and primary.improvement > 0:
        return Decision(
            winner=result_name(CANDIDATE), verdict="b_better", reasons=[f"B is better on {summary}"], **base
        )
    if p <= alpha and primary.improvement < 0:
        return Decision(winner=result_name(CONTROL), verdict="a_better", reasons=[f"B is worse on {summary}"], **base)
    reason = f"no significant difference on {summary}"
    return Decision(winner=NO_DIFFERENCE, verdict="no_significant_difference", reasons=[reason], **base)


class ArmsAnalysis(BaseModel):
    """Everything :func:`analyze_arms` computed."""

    tests: dict[str, MetricTest] = Field(description="Per-metric tests, for metrics with 2+ values per arm.")
    decision: Decision = Field(description="The winner and the reasons.")


def analyze_arms(
    samples_a: Mapping[str, ArrayLike],
    samples_b: Mapping[str, ArrayLike],
    *,
    primary_metric: str,
    minimum_samples: int,
    alpha: float = 0.05,
    directions: Mapping[str, Direction] | None = None,
    guardrails: Sequence[Guardrail] = (),
    sample_ratio: SampleRatioCheck | None = None,
    n_resamples: int = 2000,
    rng: np.random.Generator | None = None,
    sequential: bool = False,
    previous_sequential_p: Mapping[str, float] | None = None,
) -> ArmsAnalysis:
    """Compare two arms metric by metric and decide; the whole pipeline, free of any storage.

    Metrics with fewer than two values in an arm are left out of the tests (and of the Holm family).
    Intervals have coverage ``1 - alpha``.  See :func:`compare_metric`, :func:`check_guardrail` and
    :func:`decide` for the parts.

    Returns:
        Per-metric tests and the decision.
    """
    tests: dict[str, MetricTest] = {}
    previous = previous_sequential_p or {}
    for name, values_a in samples_a.items():
        x, y = as_float_array(values_a), as_float_array(samples_b.get(name, ()))
        if x.size >= 2 and y.size >= 2:
            tests[name] = compare_metric(
                name, x, y, direction=metric_direction(name, directions), confidence=1.0 - alpha,
                n_resamples=n_resamples, rng=rng, sequential=sequential,
                previous_sequential_p=previous.get(name, 1.0),
            )  # fmt: skip
    checks = [
        check_guardrail(g, samples_a[g.metric], samples_b[g.metric], metric_direction(g.metric, directions), alpha)
        for g in guardrails
        if g.metric in tests
    ]
    decision = decide(
        tests, primary_metric=primary_metric, minimum_samples=minimum_samples, alpha=alpha,
        guardrail_checks=checks, sample_ratio=sample_ratio,
    )  # fmt: skip
    return ArmsAnalysis(tests=tests, decision=decision)
