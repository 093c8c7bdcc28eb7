"""Statistics shared by evaluation and experiments: paired, unpaired, sequential tests and corrections."""

from __future__ import annotations

from rag_factory.statistics.directions import Direction, metric_direction, relative_improvement
from rag_factory.statistics.multiple_testing import holm_adjust
from rag_factory.statistics.paired import PairedComparison, bootstrap_mean_ci, compare_paired, paired_values
from rag_factory.statistics.sample_ratio import SRM_THRESHOLD, SampleRatioCheck, sample_ratio_mismatch
from rag_factory.statistics.sequential import DEFAULT_MIXING_SD, always_valid_p_values, msprt_p_value
from rag_factory.statistics.unpaired import (
    BOOTSTRAP_MAX_DRAWS,
    CIMethod,
    ConfidenceInterval,
    as_float_array,
    bootstrap_mean_diff_ci,
    mann_whitney_u,
    welch_parts,
    welch_t_test,
)

__all__ = [
    "BOOTSTRAP_MAX_DRAWS",
    "DEFAULT_MIXING_SD",
    "SRM_THRESHOLD",
    "CIMethod",
    "ConfidenceInterval",
    "Direction",
    "PairedComparison",
    "SampleRatioCheck",
    "always_valid_p_values",
    "as_float_array",
    "bootstrap_mean_ci",
    "bootstrap_mean_diff_ci",
    "compare_paired",
    "holm_adjust",
    "mann_whitney_u",
    "metric_direction",
    "msprt_p_value",
    "paired_values",
    "relative_improvement",
    "sample_ratio_mismatch",
    "welch_parts",
    "welch_t_test",
]
