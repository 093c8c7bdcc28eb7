"""``OutcomeTable``: the growable in-memory columns of one test's outcomes, which both stores keep."""

from __future__ import annotations

import numpy as np

from rag_factory.arrays import FloatArray
from rag_factory.experiments.arms import CANDIDATE
from rag_factory.experiments.store import OutcomeBatch, OutcomeColumns


class OutcomeTable:
    """Growable columns (capacity doubles, so appends are amortised O(1)); not thread-safe by itself."""

    def __init__(self) -> None:
        self.size = 0
        self.is_b = np.zeros(0, dtype=np.bool_)
        self.timestamps = np.zeros(0)
        self.splits = np.zeros(0)
        self.metrics: dict[str, FloatArray] = {}

    def _grow(self, needed: int) -> None:
        capacity = max(needed, 2 * self.timestamps.size, 64)
        is_b = np.zeros(capacity, dtype=np.bool_)
        is_b[: self.size] = self.is_b[: self.size]
        self.is_b = is_b
        self.timestamps = _grown(self.timestamps, self.size, capacity, 0.0)
        self.splits = _grown(self.splits, self.size, capacity, 0.0)
        self.metrics = {k: _grown(v, self.size, capacity, np.nan) for k, v in self.metrics.items()}

    def append(self, batch: OutcomeBatch) -> None:
        """Append one arm's outcomes; a metric seen for the first time is NaN for earlier outcomes."""
        start, end = self.size, self.size + len(batch)
        if end > self.timestamps.size:
            self._grow(end)
        for name in batch.metrics:
            if name not in self.metrics:
                self.metrics[name] = np.full(self.timestamps.size, np.nan)
        self.is_b[start:end] = batch.arm == CANDIDATE
        self.timestamps[start:end] = batch.timestamps
        self.splits[start:end] = batch.splits
        for name, column in self.metrics.items():
            values = batch.metrics.get(name)
            column[start:end] = np.nan if values is None else values
        self.size = end

    def view(self) -> OutcomeColumns:
        """Read-only views of every outcome so far (no copy)."""
        # Views of the filled prefix: later appends write past it or into a new buffer, so a view
        # stays a consistent snapshot without copying.
        is_b = self.is_b[: self.size]
        is_b.flags.writeable = False
        return OutcomeColumns(
            is_b=is_b,
            timestamps=_frozen(self.timestamps[: self.size]),
            splits=_frozen(self.splits[: self.size]),
            metrics={k: _frozen(v[: self.size]) for k, v in self.metrics.items()},
        )


def _grown(old: FloatArray, size: int, capacity: int, fill: float) -> FloatArray:
    new = np.full(capacity, fill)
    new[:size] = old[:size]
    return new


def _frozen(view: FloatArray) -> FloatArray:
    view.flags.writeable = False
    return view
