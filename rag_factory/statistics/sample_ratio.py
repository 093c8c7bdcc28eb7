"""The sample-ratio-mismatch (SRM) check: do the arms' counts match the split in force?"""

from __future__ import annotations

from pydantic import BaseModel, Field
from scipy import stats

from rag_factory.errors import InvalidArgumentError

SRM_THRESHOLD = 0.001


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
