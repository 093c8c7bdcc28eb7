"""Guardrails of an A/B test: one-sided harm tests that let B be no worse than a tolerance."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike
from pydantic import BaseModel, Field
from scipy import stats

from rag_factory.arrays import FloatArray
from rag_factory.statistics import Direction, as_float_array, metric_direction, welch_parts

Statistic = Literal["mean", "p50", "p90", "p95", "p99"]
_QUANTILES: dict[Statistic, float] = {"p50": 0.5, "p90": 0.9, "p95": 0.95, "p99": 0.99}


class Guardrail(BaseModel):
    """A metric that B must not make worse beyond a tolerance, whatever the primary metric says."""

    metric: str = Field(min_length=1, description="Metric name, e.g. 'latency' or 'error_rate'.")
    statistic: Statistic = Field(default="mean", description="Compare means or a quantile (p99 latency).")
    relative_tolerance: float = Field(
        default=0.05, ge=0.0, description="Allowed degradation as a fraction of A's value."
    )
    absolute_tolerance: float = Field(
        default=0.0, ge=0.0, description="Allowed degradation in metric units (floor for tiny A values)."
    )


class GuardrailCheck(BaseModel):
    """Outcome of one guardrail's harm test."""

    guardrail: Guardrail = Field(description="The guardrail tested.")
    value_a: float = Field(description="Statistic in A.")
    value_b: float = Field(description="Statistic in B.")
    degradation: float = Field(description="How much worse B is, in metric units (negative: better).")
    allowed: float = Field(description="max(absolute_tolerance, relative_tolerance * |value_a|).")
    p_value: float = Field(description="One-sided p-value of 'degradation > allowed'.")
    breached: bool = Field(description="True when p_value < alpha: B is significantly too much worse.")


def default_guardrails(metrics: Sequence[str]) -> list[Guardrail]:
    """Guardrails implied by metric names: mean and p99 of latency-like metrics, mean of error rates.

    Latency (any name containing ``latency``, ``time`` or a ``ms`` token) may not get more than 10%
    worse in mean or p99; an error rate may not rise by more than 10% of A's rate (at least 0.001).
    """
    guardrails: list[Guardrail] = []
    for name in metrics:
        lowered = name.lower()
        if "error" in lowered:
            guardrails.append(Guardrail(metric=name, relative_tolerance=0.1, absolute_tolerance=0.001))
        elif metric_direction(name) == "lower":
            guardrails.append(Guardrail(metric=name, statistic="mean", relative_tolerance=0.1))
            guardrails.append(Guardrail(metric=name, statistic="p99", relative_tolerance=0.1))
    return guardrails


def _quantile_se(x: FloatArray, q: float) -> float:
    # Distribution-free: the order statistics at ranks n*q ± z*sqrt(n*q*(1-q)) bound a 95% interval
    # of the q-quantile, so half its width over z estimates the standard error.
    z = 1.959963984540054
    half = z * math.sqrt(x.size * q * (1.0 - q))
    lo = min(max(math.floor(x.size * q - half), 0), x.size - 1)
    hi = min(max(math.ceil(x.size * q + half), 0), x.size - 1)
    bounds = np.partition(x, [lo, hi])
    return float(bounds[hi] - bounds[lo]) / (2.0 * z)


def _no_verdict(guardrail: Guardrail, value_a: float, value_b: float) -> GuardrailCheck:
    """A check that the data cannot decide yet: reported, never breached."""
    return GuardrailCheck(
        guardrail=guardrail, value_a=value_a, value_b=value_b, degradation=0.0,
        allowed=0.0, p_value=1.0, breached=False,
    )  # fmt: skip


def check_guardrail(
    guardrail: Guardrail, a: ArrayLike, b: ArrayLike, direction: Direction, alpha: float
) -> GuardrailCheck:
    """Test whether B degrades a guardrail metric by more than its tolerance.

    With ``delta = s * (stat_b - stat_a)`` (``s = -1`` for "higher" metrics, so ``delta > 0`` means
    B is worse) and ``allowed = max(abs_tol, rel_tol * |stat_a|)``, the one-sided test of
    ``H0: delta <= allowed`` uses ``z = (delta - allowed) / se``: Welch's se and a t law for means,
    the order-statistic se of each quantile and a normal law for quantiles.  No multiplicity
    correction is applied: a veto is the cautious direction. A quantile is tested only once each
    arm has at least ``1 / (1 - q)`` values (100 for p99); before that the check never breaches.

    Args:
        guardrail: What to compare and the tolerance.
        a: Arm A values.
        b: Arm B values.
        direction: Direction of the metric.
        alpha: Significance level of the harm test.

    Returns:
        The statistics, the p-value and whether the guardrail is breached.
    """
    x, y = as_float_array(a), as_float_array(b)
    if x.size < 2 or y.size < 2:
        return _no_verdict(guardrail, float(x.mean()) if x.size else 0.0, float(y.mean()) if y.size else 0.0)
    if guardrail.statistic == "mean":
        diff, se, df = welch_parts(x, y)
        value_a, value_b = float(x.mean()), float(y.mean())
    else:
        q = _QUANTILES[guardrail.statistic]
        value_a, value_b = float(np.quantile(x, q)), float(np.quantile(y, q))
        if min(x.size, y.size) * (1.0 - q) < 1.0:
            # Too few values for the quantile to be estimated (p99 needs 100 per arm): each arm's
            # "p99" is little more than its maximum, which grows with the arm's size alone, and the
            # order-statistic se collapses to 0. No verdict is possible yet.
            return _no_verdict(guardrail, value_a, value_b)
        diff, se, df = value_b - value_a, math.hypot(_quantile_se(x, q), _quantile_se(y, q)), math.inf
    degradation = diff if direction == "lower" else -diff
    allowed = max(guardrail.absolute_tolerance, guardrail.relative_tolerance * abs(value_a))
    # With no spread the degradation is exact: p is 0 when it exceeds the tolerance, else 1.
    p = float(stats.t.sf((degradation - allowed) / se, df)) if se > 0.0 else float(degradation <= allowed)
    return GuardrailCheck(
        guardrail=guardrail, value_a=value_a, value_b=value_b, degradation=degradation,
        allowed=allowed, p_value=p, breached=p < alpha,
    )  # fmt: skip
