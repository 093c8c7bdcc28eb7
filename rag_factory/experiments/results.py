"""Reading a test's outcome columns: one entry per outcome (``results[name]``), and each arm's samples."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TypedDict

import numpy as np

from rag_factory.arrays import FloatArray
from rag_factory.experiments.arms import Arm, arm_of
from rag_factory.experiments.store import OutcomeColumns
from rag_factory.models.embedding.models import ABTestConfig


class RecordedOutcome(TypedDict):
    """One entry of ``ABTestingFramework.results[name]``."""

    model_id: str
    variant: Arm
    metrics: dict[str, float]
    timestamp: datetime


def recorded_outcomes(config: ABTestConfig, columns: OutcomeColumns) -> list[RecordedOutcome]:
    """Every outcome as an entry, in recording order; metrics an outcome did not report are left out."""
    names = list(columns.metrics)
    values = np.column_stack([columns.metrics[n] for n in names]) if names else np.zeros((len(columns), 0))
    outcomes: list[RecordedOutcome] = []
    for is_b, stamp, row in zip(columns.is_b.tolist(), columns.timestamps.tolist(), values.tolist(), strict=True):
        outcomes.append(
            RecordedOutcome(
                model_id=config.model_b_id if is_b else config.model_a_id,
                variant=arm_of(is_b),
                metrics={n: v for n, v in zip(names, row, strict=True) if not math.isnan(v)},
                timestamp=datetime.fromtimestamp(stamp, UTC),
            )
        )
    return outcomes


def split_arms(columns: OutcomeColumns, tracked: Sequence[str]) -> tuple[dict[str, FloatArray], dict[str, FloatArray]]:
    """Per-metric values of arm A and of arm B, NaN (not reported) dropped; tracked metrics first."""
    order = [n for n in tracked if n in columns.metrics] + [n for n in columns.metrics if n not in tracked]
    samples_a: dict[str, FloatArray] = {}
    samples_b: dict[str, FloatArray] = {}
    for name in order:
        values = columns.metrics[name]
        reported = ~np.isnan(values)
        samples_a[name] = values[reported & ~columns.is_b]
        samples_b[name] = values[reported & columns.is_b]
    return samples_a, samples_b
