"""Corrections for testing many metrics at once (Holm's step-down)."""

from __future__ import annotations

from collections.abc import Mapping


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
