"""Always-valid (sequential) p-values: the mixture SPRT, so peeking at an A/B test is safe."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from rag_factory.arrays import FloatArray
from rag_factory.errors import InvalidArgumentError
from rag_factory.statistics.unpaired import as_float_array

# Standardised sd of the mSPRT mixing prior: tau = DEFAULT_MIXING_SD * pooled sd.
DEFAULT_MIXING_SD = 0.5


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
