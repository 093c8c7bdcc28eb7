"""Paired significance tests between two systems scored on the same queries.

Per-query values (for example from :func:`retrieval_metrics.per_query`) of system A and
system B are compared with a paired t-test, a Wilcoxon signed-rank test and a paired
bootstrap confidence interval of the mean difference.  Differences are always ``B - A``, so
a positive ``mean_diff`` means B is better on a higher-is-better metric.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field
from scipy import stats

from rag_factory.errors import InvalidArgumentError

# Bootstrap resamples are drawn in blocks so that memory stays near this many numbers.
_BOOTSTRAP_BLOCK_CELLS = 2_000_000
# Differences whose spread is below this (relative) are one constant shift.
_CONSTANT_TOLERANCE = 1e-12


class PairedComparison(BaseModel):
    """Result of comparing system B against system A over the same queries."""

    model_config = ConfigDict(frozen=True)

    metric: str = Field(description="Name of the compared metric, e.g. 'ndcg@10'.")
    n: int = Field(description="Number of paired queries.")
    mean_a: float = Field(description="Mean of system A over the queries.")
    mean_b: float = Field(description="Mean of system B over the queries.")
    mean_diff: float = Field(description="Mean of the per-query differences B - A.")
    ci_low: float = Field(description="Lower bound of the bootstrap percentile CI of mean_diff.")
    ci_high: float = Field(description="Upper bound of the bootstrap percentile CI of mean_diff.")
    confidence: float = Field(description="Coverage of the confidence interval, e.g. 0.95.")
    t_pvalue: float = Field(description="Two-sided p-value of the paired t-test (scipy.stats.ttest_rel).")
    wilcoxon_pvalue: float = Field(
        description="Two-sided p-value of the Wilcoxon signed-rank test; 1.0 when every difference is 0."
    )
    effect_size: float | None = Field(
        description="Cohen's d_z = mean(B - A) / sd(B - A); None when the differences are a non-zero constant."
    )
    wins: int = Field(description="Queries where B scores higher than A.")
    losses: int = Field(description="Queries where B scores lower than A.")
    ties: int = Field(description="Queries where A and B score the same.")


def paired_values(
    values_a: Mapping[str, float], values_b: Mapping[str, float]
) -> tuple[list[str], NDArray[np.float64], NDArray[np.float64]]:
    """Align two ``{query_id: value}`` maps on their (identical) query ids.

    Args:
        values_a: Per-query values of system A.
        values_b: Per-query values of system B.

    Returns:
        The sorted query ids and the two value arrays in that order.

    Raises:
        InvalidArgumentError: The maps cover different queries, or a value is not finite.
    """
    only_a = values_a.keys() - values_b.keys()
    only_b = values_b.keys() - values_a.keys()
    if only_a or only_b:
        example = sorted(only_a | only_b)[0]
        raise InvalidArgumentError(
            f"paired values must cover the same queries; {len(only_a)} only in A, "
            f"{len(only_b)} only in B (e.g. {example!r})"
        )
    query_ids = sorted(values_a)
    a = np.array([values_a[qid] for qid in query_ids], dtype=np.float64)
    b = np.array([values_b[qid] for qid in query_ids], dtype=np.float64)
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise InvalidArgumentError("paired values must be finite numbers")
    return query_ids, a, b


def bootstrap_mean_ci(
    diffs: NDArray[np.float64], *, n_resamples: int = 10_000, confidence: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the mean of paired differences.

    Each resample draws ``n`` differences with replacement and takes their mean; the interval
    is the ``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` quantiles of those means.

    Args:
        diffs: ``(n,)`` per-query differences.
        n_resamples: Number of bootstrap resamples.
        confidence: Coverage of the interval, in ``(0, 1)``.
        seed: Seed of the numpy ``Generator``; the same seed gives the same interval.

    Returns:
        ``(low, high)``.

    Raises:
        InvalidArgumentError: ``n_resamples < 1``, ``confidence`` outside ``(0, 1)`` or no diffs.
    """
    if n_resamples < 1:
        raise InvalidArgumentError(f"n_resamples must be at least 1, got {n_resamples}")
    if not 0.0 < confidence < 1.0:
        raise InvalidArgumentError(f"confidence must be in (0, 1), got {confidence}")
    if diffs.size == 0:
        raise InvalidArgumentError("bootstrap needs at least one difference")
    rng = np.random.default_rng(seed)
    n = diffs.size
    block = max(1, _BOOTSTRAP_BLOCK_CELLS // n)
    means = np.empty(n_resamples)
    for start in range(0, n_resamples, block):
        stop = min(start + block, n_resamples)
        indices = rng.integers(0, n, size=(stop - start, n))  # (resamples, n)
        means[start:stop] = diffs[indices].mean(axis=1)
    alpha = 1.0 - confidence
    low, high = np.quantile(means, [alpha / 2.0, 1.0 - alpha / 2.0])
    return float(low), float(high)


def _is_constant(diffs: NDArray[np.float64]) -> bool:
    # Rounding makes (a + 0.1) - a differ in the last bits; treat that as constant, not as signal.
    return float(np.ptp(diffs)) <= _CONSTANT_TOLERANCE * max(1.0, float(np.abs(diffs).max()))


def _t_test_pvalue(a: NDArray[np.float64], b: NDArray[np.float64], diffs: NDArray[np.float64]) -> float:
    if _is_constant(diffs):
        # Zero variance: scipy returns NaN.  Identical systems cannot differ (p = 1); a constant
        # non-zero shift is as certain as a difference can be (t = ±inf, p = 0).
        return 1.0 if not np.any(diffs) else 0.0
    return float(stats.ttest_rel(b, a).pvalue)


def _wilcoxon_pvalue(diffs: NDArray[np.float64]) -> float:
    if not np.any(diffs != 0.0):
        # scipy drops zero differences and has nothing left to rank.
        return 1.0
    return float(stats.wilcoxon(diffs).pvalue)


def _effect_size(diffs: NDArray[np.float64]) -> float | None:
    mean = float(np.mean(diffs))
    if _is_constant(diffs):
        return 0.0 if mean == 0.0 else None
    return mean / float(np.std(diffs, ddof=1))


def compare_paired(
    values_a: Mapping[str, float],
    values_b: Mapping[str, float],
    *,
    metric: str = "",
    n_resamples: int = 10_000,
    confidence: float = 0.95,
    seed: int = 0,
) -> PairedComparison:
    """Compare system B with system A on per-query values of one metric.

    Args:
        values_a: ``{query_id: value}`` of system A (the baseline).
        values_b: ``{query_id: value}`` of system B (the candidate); same query ids as A.
        metric: Name recorded in the result.
        n_resamples: Bootstrap resamples for the confidence interval.
        confidence: Coverage of the confidence interval.
        seed: Seed of the bootstrap, so reports are reproducible.

    Returns:
        Means, the bootstrap CI of ``mean(B - A)``, paired t-test and Wilcoxon p-values,
        Cohen's d_z and the win/loss/tie counts.

    Raises:
        InvalidArgumentError: Different query ids, fewer than two queries, non-finite values,
            or bad bootstrap settings.
    """
    _, a, b = paired_values(values_a, values_b)
    if a.size < 2:
        raise InvalidArgumentError(f"a paired test needs at least 2 queries, got {a.size}")
    diffs = b - a
    ci_low, ci_high = bootstrap_mean_ci(diffs, n_resamples=n_resamples, confidence=confidence, seed=seed)
    return PairedComparison(
        metric=metric,
        n=int(a.size),
        mean_a=float(a.mean()),
        mean_b=float(b.mean()),
        mean_diff=float(diffs.mean()),
        ci_low=ci_low,
        ci_high=ci_high,
        confidence=confidence,
        t_pvalue=_t_test_pvalue(a, b, diffs),
        wilcoxon_pvalue=_wilcoxon_pvalue(diffs),
        effect_size=_effect_size(diffs),
        wins=int((diffs > 0).sum()),
        losses=int((diffs < 0).sum()),
        ties=int((diffs == 0).sum()),
    )
