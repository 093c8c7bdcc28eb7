"""Two-sample (unpaired) tests over numpy arrays: Welch, Mann-Whitney and bootstrap intervals."""

from __future__ import annotations

import math
from typing import Literal, NamedTuple

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

from rag_factory.arrays import FloatArray
from rag_factory.errors import InvalidArgumentError

CIMethod = Literal["bootstrap", "normal"]

# Bootstrap is exact below this many index draws (n_resamples * (n_a + n_b)); above it the CLT
# holds so well that the normal interval is indistinguishable, and far cheaper.
BOOTSTRAP_MAX_DRAWS = 4_000_000


def as_float_array(values: ArrayLike) -> FloatArray:
    """``values`` as a flat float64 array (the tests' common input form)."""
    return np.asarray(values, dtype=np.float64).ravel()


def welch_parts(a: FloatArray, b: FloatArray) -> tuple[float, float, float]:
    """Difference of means, its standard error and the Welch–Satterthwaite degrees of freedom.

    ``d = mean(b) - mean(a)``, ``se = sqrt(s_a^2/n_a + s_b^2/n_b)``,
    ``df = se^4 / ((s_a^2/n_a)^2/(n_a-1) + (s_b^2/n_b)^2/(n_b-1))``.  Needs two values per arm.
    """
    va, vb = float(a.var(ddof=1)) / a.size, float(b.var(ddof=1)) / b.size
    se2 = va + vb
    df = se2 * se2 / (va * va / (a.size - 1) + vb * vb / (b.size - 1)) if se2 > 0.0 else math.inf
    return float(b.mean() - a.mean()), math.sqrt(se2), df


def welch_t_test(a: ArrayLike, b: ArrayLike) -> float:
    """Two-sided p-value of Welch's t-test for equal means (unequal variances).

    ``t = d / se`` with the parts of :func:`welch_parts`; ``p = 2 * T_df.sf(|t|)``.  Fewer than two
    values in an arm gives 1.0 (no evidence); zero variance in both arms gives 0.0 or 1.0 depending
    on whether the means differ.
    """
    x, y = as_float_array(a), as_float_array(b)
    if x.size < 2 or y.size < 2:
        return 1.0
    diff, se, df = welch_parts(x, y)
    if se == 0.0:
        return 1.0 if diff == 0.0 else 0.0
    return float(2.0 * stats.t.sf(abs(diff) / se, df))


def mann_whitney_u(a: ArrayLike, b: ArrayLike) -> float:
    """Two-sided p-value of the Mann–Whitney U rank test (scipy; asymptotic with tie correction)."""
    x, y = as_float_array(a), as_float_array(b)
    if x.size == 0 or y.size == 0 or np.ptp(np.concatenate([x, y])) == 0.0:
        return 1.0
    return float(stats.mannwhitneyu(y, x, alternative="two-sided").pvalue)


class ConfidenceInterval(NamedTuple):
    """An interval for ``mean(b) - mean(a)`` and how it was computed."""

    low: float
    high: float
    method: CIMethod


def bootstrap_mean_diff_ci(
    a: ArrayLike,
    b: ArrayLike,
    *,
    confidence: float = 0.95,
    n_resamples: int = 2000,
    rng: np.random.Generator | None = None,
    max_draws: int = BOOTSTRAP_MAX_DRAWS,
) -> ConfidenceInterval:
    """Percentile bootstrap CI of ``mean(b) - mean(a)`` for two unpaired samples.

    Each resample draws ``n_a`` values from A and, independently, ``n_b`` values from B (with
    replacement) and records ``mean(b*) - mean(a*)``; the interval is the ``(1-c)/2`` and
    ``(1+c)/2`` quantiles of those differences.  Arrays are never subtracted element-wise, so arm
    sizes may differ.

    When ``n_resamples * (n_a + n_b) > max_draws`` (or ``n_resamples == 0``) the normal interval
    ``d ± z_{(1+c)/2} * se`` (Welch standard error) is returned instead: with thousands of values
    per arm the bootstrap distribution of a mean is normal to within resampling noise, and this
    keeps analysis of millions of outcomes in milliseconds.

    Args:
        a: Arm A values (at least two).
        b: Arm B values (at least two).
        confidence: Coverage, e.g. 0.95.
        n_resamples: Bootstrap resamples.
        rng: Random generator (seed it for reproducible intervals).
        max_draws: Largest number of index draws before switching to the normal interval.

    Returns:
        The interval and the method used.

    Raises:
        InvalidArgumentError: An arm has fewer than two values or ``confidence`` is not in (0, 1).
    """
    x, y = as_float_array(a), as_float_array(b)
    if x.size < 2 or y.size < 2:
        raise InvalidArgumentError(f"bootstrap needs two values per arm, got {x.size} and {y.size}")
    if not 0.0 < confidence < 1.0:
        raise InvalidArgumentError(f"confidence must be in (0, 1), got {confidence!r}")
    tail = (1.0 - confidence) / 2.0
    if n_resamples <= 0 or n_resamples * (x.size + y.size) > max_draws:
        diff, se, _ = welch_parts(x, y)
        half = float(stats.norm.ppf(1.0 - tail)) * se
        return ConfidenceInterval(diff - half, diff + half, "normal")
    gen = rng if rng is not None else np.random.default_rng()
    means_a = x[gen.integers(0, x.size, size=(n_resamples, x.size))].mean(axis=1)  # (resamples,)
    means_b = y[gen.integers(0, y.size, size=(n_resamples, y.size))].mean(axis=1)
    low, high = np.quantile(means_b - means_a, [tail, 1.0 - tail])
    return ConfidenceInterval(float(low), float(high), "bootstrap")
