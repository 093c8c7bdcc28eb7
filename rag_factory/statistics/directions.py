"""Which way is better for a metric: directions by name, and relative improvement."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Literal

Direction = Literal["higher", "lower"]

# Substrings and whole name tokens that mark a metric as "lower is better" by default.
_LOWER_SUBSTRINGS = ("latency", "time", "error")
_LOWER_TOKENS = frozenset({"ms", "p95", "p99"})


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
