"""A/B statistics over numpy arrays: directions, Welch and rank tests, bootstrap CIs, SRM, Holm, mSPRT."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
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


def _as_array(values: ArrayLike) -> FloatArray:
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
    x, y = _as_array(a), _as_array(b)
    if x.size < 2 or y.size < 2:
        return 1.0
    diff, se, df = welch_parts(x, y)
    if se == 0.0:
        return 1.0 if diff == 0.0 else 0.0
    return float(2.0 * stats.t.sf(abs(diff) / se, df))


def mann_whitney_u(a: ArrayLike, b: ArrayLike) -> float:
    """Two-sided p-value of the Mann–Whitney U rank test (scipy; asymptotic with tie correction)."""
    x, y = _as_array(a), _as_array(b)
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
    x, y = _as_array(a), _as_array(b)
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
    x, y = _as_array(a), _as_array(b)
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
    x, y = _as_array(a), _as_array(b)
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
    x, y = _as_array(a), _as_array(b)
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

    winner: Literal["model_a", "model_b", "no_difference"] = Field(description="The model to keep.")
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
        return Decision(winner="no_difference", verdict="not_enough_data", reasons=[reason], **base)
    if sample_ratio is not None and sample_ratio.flagged:
        reason = (
            f"sample ratio mismatch: {sample_ratio.n_a} in A vs {sample_ratio.n_b} in B for an expected "
            f"split of {sample_ratio.expected_split:.3f} (p={sample_ratio.p_value:.2e}); fix the assignment"
        )
        return Decision(winner="no_difference", verdict="sample_ratio_mismatch", reasons=[reason], **base)
    breaches = [
        f"guardrail {c.guardrail.statistic} {c.guardrail.metric!r} breached: B is worse by "
        f"{c.degradation:.4g} (allowed {c.allowed:.4g}, p={c.p_value:.2e})"
        for c in guardrail_checks
        if c.breached
    ]
    if breaches:
        return Decision(winner="model_a", verdict="guardrail_breach", reasons=breaches, **base)
    p = adjusted[primary_metric]
    summary = (
        f"{primary_metric!r}: A={primary.mean_a:.4g}, B={primary.mean_b:.4g} "
        f"({primary.improvement:+.2%} for B), Holm-adjusted p={p:.2e} vs alpha={alpha}"
    )
    if p <= alpha and primary.improvement > 0:
        return Decision(winner="model_b", verdict="b_better", reasons=[f"B is better on {summary}"], **base)
    if p <= alpha and primary.improvement < 0:
        return Decision(winner="model_a", verdict="a_better", reasons=[f"B is worse on {summary}"], **base)
    reason = f"no significant difference on {summary}"
    return Decision(winner="no_difference", verdict="no_significant_difference", reasons=[reason], **base)


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
        x, y = _as_array(values_a), _as_array(samples_b.get(name, ()))
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
