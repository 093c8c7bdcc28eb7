"""A/B statistics over numpy arrays: directions, Welch and rank tests, bootstrap CIs, SRM, Holm, mSPRT."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Literal, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray
from pydantic import BaseModel, Field
from scipy import stats

from rag_factory.errors import InvalidArgumentError

Direction = Literal["higher", "lower"]
CIMethod = Literal["bootstrap", "normal"]
FloatArray = NDArray[np.float64]

# Substrings and whole name tokens that mark a metric as "lower is better" by default.
_LOWER_SUBSTRINGS = ("latency", "time", "error")
_LOWER_TOKENS = frozenset({"ms", "p95", "p99"})

# Bootstrap is exact below this many index draws (n_resamples * (n_a + n_b)); above it the CLT
# holds so well that the normal interval is indistinguishable, and far cheaper.
BOOTSTRAP_MAX_DRAWS = 4_000_000
# Standardised sd of the mSPRT mixing prior: tau = DEFAULT_MIXING_SD * pooled sd.
DEFAULT_MIXING_SD = 0.5
SRM_THRESHOLD = 0.001


def metric_direction(name: str, overrides: Mapping[str, Direction] | None = None) -> Direction:
    """Say whether larger values of a metric are better.

    An override wins.  Otherwise names containing ``latency``, ``time`` or ``error``, or with a
    ``ms``, ``p95`` or ``p99`` token (``search_ms``, ``p99``), are "lower"; everything else is
    "higher".

    Args:
        name: Metric name.
        overrides: Explicit directions by metric name.

    Returns:
        ``"higher"`` or ``"lower"``.
    """
    if overrides and name in overrides:
        return overrides[name]
    lowered = name.lower()
    if any(word in lowered for word in _LOWER_SUBSTRINGS):
        return "lower"
    if _LOWER_TOKENS.intersection(re.split(r"[^a-z0-9]+", lowered)):
        return "lower"
    return "higher"


def relative_improvement(mean_a: float, mean_b: float, direction: Direction) -> float:
    """Signed relative change of B over A, positive when B is better.

    ``improvement = s * (mean_b - mean_a) / |mean_a|`` with ``s = +1`` for "higher" and ``-1``
    for "lower"; when ``mean_a == 0`` the absolute difference ``s * (mean_b - mean_a)`` is used.
    """
    sign = 1.0 if direction == "higher" else -1.0
    diff = mean_b - mean_a
    return sign * diff / abs(mean_a) if mean_a != 0.0 else sign * diff


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


class SampleRatioCheck(BaseModel):
    """Result of the sample-ratio-mismatch (SRM) test."""

    n_a: int = Field(ge=0, description="Samples observed in A.")
    n_b: int = Field(ge=0, description="Samples observed in B.")
    expected_split: float = Field(ge=0.0, le=1.0, description="Expected fraction of samples in B.")
    p_value: float = Field(ge=0.0, le=1.0, description="Chi-square goodness-of-fit p-value (1 dof).")
    flagged: bool = Field(description="True when p_value < threshold: the split is broken.")


def sample_ratio_mismatch(
    n_a: int, n_b: int, expected_split: float, *, threshold: float = SRM_THRESHOLD
) -> SampleRatioCheck:
    """Chi-square test that the observed counts match the expected split.

    ``chi2 = (n_a - N(1-s))^2 / (N(1-s)) + (n_b - N s)^2 / (N s)`` with ``N = n_a + n_b``, compared
    with a chi-square law with 1 degree of freedom.  A split of 0 or 1 expects an empty arm: any
    sample there is flagged (p = 0).

    Args:
        n_a: Samples in A.
        n_b: Samples in B.
        expected_split: Expected fraction in B.
        threshold: Flag when ``p < threshold`` (0.001 by default, so true SRMs stand out).

    Returns:
        The counts, the p-value and whether a mismatch is flagged.

    Raises:
        InvalidArgumentError: A negative count or a split outside [0, 1].
    """
    if n_a < 0 or n_b < 0 or not 0.0 <= expected_split <= 1.0:
        raise InvalidArgumentError(f"SRM needs counts >= 0 and a split in [0, 1], got {n_a}, {n_b}, {expected_split!r}")
    total = n_a + n_b
    if total == 0:
        p = 1.0
    elif expected_split in (0.0, 1.0):
        p = 1.0 if (n_b if expected_split == 0.0 else n_a) == 0 else 0.0
    else:
        expected = [total * (1.0 - expected_split), total * expected_split]
        p = float(stats.chisquare([n_a, n_b], f_exp=expected).pvalue)
    return SampleRatioCheck(n_a=n_a, n_b=n_b, expected_split=expected_split, p_value=p, flagged=p < threshold)


def holm_adjust(p_values: Mapping[str, float]) -> dict[str, float]:
    """Holm step-down adjusted p-values, which control the family-wise error rate.

    With ``p_(1) <= ... <= p_(m)``: ``p~_(i) = max_{j<=i} min(1, (m - j + 1) * p_(j))``.  A metric is
    significant at level alpha when its adjusted p-value is ``<= alpha``.

    Args:
        p_values: Raw p-values by metric name.

    Returns:
        Adjusted p-values by metric name.
    """
    ordered = sorted(p_values.items(), key=lambda item: item[1])
    adjusted: dict[str, float] = {}
    running = 0.0
    for rank, (name, p) in enumerate(ordered):
        running = max(running, min(1.0, (len(ordered) - rank) * p))
        adjusted[name] = running
    return adjusted


def always_valid_p_values(
    a: ArrayLike, b: ArrayLike, looks: ArrayLike, *, mixing_sd: float = DEFAULT_MIXING_SD
) -> FloatArray:
    """Always-valid p-values of the mSPRT for ``mean(b) - mean(a) = 0`` at a series of looks.

    Johari, Pekelis & Walsh (2017), "Always valid inference": with ``d`` the difference of sample
    means, ``V = s_a^2/n_a + s_b^2/n_b`` its variance and a normal mixing prior ``theta ~ N(0, tau^2)``
    on the true difference, the mixture likelihood ratio is

        ``Lambda_n = sqrt(V / (V + tau^2)) * exp(tau^2 * d^2 / (2 V (V + tau^2)))``

    (for lockstep arms, ``V = 2 sigma^2 / n`` gives the paper's two-sample formula).  The
    always-valid p-value is ``p_n = min(p_{n-1}, 1 / Lambda_n)`` with ``p_0 = 1``, so it never
    increases from look to look, and stopping whenever ``p_n <= alpha`` keeps the type-I error at
    most alpha however often one peeks.  Variances are plug-in sample variances (as deployed by
    Johari et al.), so validity is approximate for very small arms.

    Mixing variance: ``tau = mixing_sd * s_pooled``, a prior on the *standardised* effect.  The
    choice only trades power between effect sizes (the test is most sensitive to effects near
    ``tau``); 0.5 sd suits the 0.1-0.5 sd effects typical of model comparisons.

    Args:
        a: Arm A values in arrival order, shape ``(..., n)``; leading axes are independent runs.
        b: Arm B values, same shape as ``a``.
        looks: Increasing sample counts per arm at which to look (each at least 2, at most n).
        mixing_sd: Standardised sd of the mixing prior.

    Returns:
        Running-minimum p-values of shape ``(..., len(looks))``.

    Raises:
        InvalidArgumentError: Mismatched shapes, bad looks or a non-positive ``mixing_sd``.
    """
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    at = np.asarray(looks, dtype=np.int64).ravel()
    if x.shape != y.shape or at.size == 0 or at.min() < 2 or at.max() > x.shape[-1] or mixing_sd <= 0:
        raise InvalidArgumentError(f"mSPRT needs equal-shaped arms, looks in [2, {x.shape[-1]}] and mixing_sd > 0")
    # Shift by a common reference value so the sum-of-squares formula does not cancel catastrophically.
    ref = x[..., :1]
    x, y = x - ref, y - ref
    n = at.astype(np.float64)
    sums = [np.cumsum(v, axis=-1)[..., at - 1] for v in (x, y)]  # (..., looks)
    squares = [np.cumsum(v * v, axis=-1)[..., at - 1] for v in (x, y)]
    var_a, var_b = ((sq - s * s / n) / (n - 1) for s, sq in zip(sums, squares, strict=True))
    p = _msprt_p(sums[1] / n - sums[0] / n, np.maximum(var_a, 0.0), np.maximum(var_b, 0.0), n, n, mixing_sd)
    return np.minimum.accumulate(p, axis=-1)


def _msprt_p(
    diff: FloatArray, var_a: FloatArray, var_b: FloatArray, n_a: FloatArray, n_b: FloatArray, mixing_sd: float
) -> FloatArray:
    v = var_a / n_a + var_b / n_b
    tau2 = mixing_sd**2 * ((n_a - 1) * var_a + (n_b - 1) * var_b) / (n_a + n_b - 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_lr = 0.5 * np.log(v / (v + tau2)) + tau2 * diff * diff / (2.0 * v * (v + tau2))
        p = np.minimum(1.0, np.exp(-log_lr))
    # Zero variance in both arms: the difference is known exactly.
    return np.where(v > 0.0, p, np.where(diff == 0.0, 1.0, 0.0))


def msprt_p_value(a: ArrayLike, b: ArrayLike, *, previous: float = 1.0, mixing_sd: float = DEFAULT_MIXING_SD) -> float:
    """One look of the always-valid p-value: ``min(previous, 1 / Lambda_n)`` for the data so far.

    See :func:`always_valid_p_values` for the formula.  ``previous`` is the p-value of the last
    look (1.0 at the first), which makes the sequence monotone non-increasing over looks.
    """
    x, y = as_float_array(a), as_float_array(b)
    if x.size < 2 or y.size < 2:
        return previous
    one = np.ones(1)
    p = _msprt_p(
        np.array([y.mean() - x.mean()]),
        np.array([x.var(ddof=1)]),
        np.array([y.var(ddof=1)]),
        one * x.size,
        one * y.size,
        mixing_sd,
    )
    return min(previous, float(p[0]))
