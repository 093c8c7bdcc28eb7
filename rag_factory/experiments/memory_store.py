"""Experiment storage: the ``ExperimentStore`` protocol and its in-memory, columnar default backend."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, Field

from rag_factory.arrays import FloatArray
from rag_factory.errors import AlreadyExistsError, NotFoundError, describe_choices
from rag_factory.models.embedding.models import ABTestConfig

Variant = Literal["A", "B"]
ExperimentStatus = Literal["running", "stopped"]


class ExperimentRecord(BaseModel):
    """One experiment as stored: its definition and lifecycle."""

    config: ABTestConfig = Field(description="Definition; traffic_split is the split now in force.")
    status: ExperimentStatus = Field(default="running", description="'running' or 'stopped'.")
    started_at: datetime = Field(description="When the test started (UTC).")
    stopped_at: datetime | None = Field(default=None, description="When the test was stopped (UTC).")


@dataclass(frozen=True)
class OutcomeBatch:
    """Outcomes recorded for one arm, column by column (a hot path, so numpy rather than pydantic).

    Every array has the same length ``n``.  A ``NaN`` metric value means "this outcome did not report
    that metric"; real values are always finite (the framework rejects anything else).
    """

    variant: Variant
    timestamps: FloatArray  # (n,) seconds since the Unix epoch
    splits: FloatArray  # (n,) traffic split in force when each outcome was recorded
    metrics: Mapping[str, FloatArray]  # metric name -> (n,)

    def __len__(self) -> int:
        return int(self.timestamps.size)


@dataclass(frozen=True)
class OutcomeColumns:
    """All outcomes of one test in recording order, as read-only column views (NaN = not reported)."""

    is_b: NDArray[np.bool_]  # (n,) True for variant B
    timestamps: FloatArray  # (n,)
    splits: FloatArray  # (n,)
    metrics: Mapping[str, FloatArray] = field(default_factory=dict)  # name -> (n,), first-seen order

    def __len__(self) -> int:
        return int(self.timestamps.size)


class ExperimentStore(Protocol):
    """Where experiments and their outcomes live; the framework holds no other state worth keeping.

    Implementations must be safe to call from several threads.  ``load_results`` is called on every
    analysis, so a persistent backend should serve it from an in-memory column cache that it fills
    at start-up and appends to on write.
    """

    def save_test(self, record: ExperimentRecord) -> None:
        """Store a new experiment; raise ``AlreadyExistsError`` if its name is taken."""
        ...

    def load_tests(self) -> list[ExperimentRecord]:
        """Every stored experiment, running or stopped, in start order (copies)."""
        ...

    def update_split(self, test_name: str, split: float) -> None:
        """Set the traffic split now in force; raise ``NotFoundError`` for an unknown test."""
        ...

    def set_status(self, test_name: str, status: ExperimentStatus, at: datetime) -> None:
        """Change the lifecycle status (``at`` is recorded as ``stopped_at`` when stopping)."""
        ...

    def append_results(self, test_name: str, batch: OutcomeBatch) -> None:
        """Append outcomes atomically (all or none); raise ``NotFoundError`` for an unknown test."""
        ...

    def load_results(self, test_name: str) -> OutcomeColumns:
        """Every outcome so far (empty columns when there is none); ``NotFoundError`` if unknown."""
        ...


class _Table:
    """Growable columns (capacity doubles, so appends are amortised O(1))."""

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
        start, end = self.size, self.size + len(batch)
        if end > self.timestamps.size:
            self._grow(end)
        for name in batch.metrics:
            if name not in self.metrics:
                self.metrics[name] = np.full(self.timestamps.size, np.nan)
        self.is_b[start:end] = batch.variant == "B"
        self.timestamps[start:end] = batch.timestamps
        self.splits[start:end] = batch.splits
        for name, column in self.metrics.items():
            values = batch.metrics.get(name)
            column[start:end] = np.nan if values is None else values
        self.size = end

    def view(self) -> OutcomeColumns:
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


class InMemoryExperimentStore:
    """The default :class:`ExperimentStore`: everything in process memory, lost on exit."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: dict[str, ExperimentRecord] = {}
        self._tables: dict[str, _Table] = {}

    def _record(self, test_name: str) -> ExperimentRecord:
        record = self._records.get(test_name)
        if record is None:
            raise NotFoundError(
                f"A/B test {test_name!r} is not stored; stored: {describe_choices(self._records)}",
                test_name=test_name,
            )
        return record

    def save_test(self, record: ExperimentRecord) -> None:
        """Store a new experiment (a copy); raise ``AlreadyExistsError`` if its name is taken."""
        name = record.config.test_name
        with self._lock:
            if name in self._records:
                raise AlreadyExistsError(f"A/B test {name!r} already exists", test_name=name)
            self._records[name] = record.model_copy(deep=True)
            self._tables[name] = _Table()

    def load_tests(self) -> list[ExperimentRecord]:
        """Copies of every stored experiment, in start order."""
        with self._lock:
            return [record.model_copy(deep=True) for record in self._records.values()]

    def update_split(self, test_name: str, split: float) -> None:
        """Set the traffic split now in force."""
        with self._lock:
            self._record(test_name).config.traffic_split = split

    def set_status(self, test_name: str, status: ExperimentStatus, at: datetime) -> None:
        """Change the lifecycle status; stopping records ``at`` as ``stopped_at``."""
        with self._lock:
            record = self._record(test_name)
            record.status = status
            record.stopped_at = at if status == "stopped" else None

    def append_results(self, test_name: str, batch: OutcomeBatch) -> None:
        """Append outcomes to the test's columns."""
        with self._lock:
            self._record(test_name)
            self._tables[test_name].append(batch)

    def load_results(self, test_name: str) -> OutcomeColumns:
        """Read-only views of every outcome so far (no copy)."""
        with self._lock:
            self._record(test_name)
            return self._tables[test_name].view()
