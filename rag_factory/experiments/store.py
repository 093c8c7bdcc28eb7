"""The ``ExperimentStore`` protocol and the records it keeps: experiments, outcomes, request arms, rollouts."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, Field

from rag_factory.arrays import FloatArray
from rag_factory.errors import AlreadyExistsError, InvalidArgumentError, quoted
from rag_factory.experiments.arms import Arm
from rag_factory.experiments.limits import MAX_REQUEST_ID_CHARS
from rag_factory.models.embedding.models import ABTestConfig

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

    arm: Arm
    timestamps: FloatArray  # (n,) seconds since the Unix epoch
    splits: FloatArray  # (n,) traffic split in force when each outcome was recorded
    metrics: Mapping[str, FloatArray]  # metric name -> (n,)

    def __len__(self) -> int:
        return int(self.timestamps.size)


@dataclass(frozen=True)
class OutcomeColumns:
    """All outcomes of one test in recording order, as read-only column views (NaN = not reported)."""

    is_b: NDArray[np.bool_]  # (n,) True for arm B
    timestamps: FloatArray  # (n,)
    splits: FloatArray  # (n,)
    metrics: Mapping[str, FloatArray] = field(default_factory=dict)  # name -> (n,), first-seen order

    def __len__(self) -> int:
        return int(self.timestamps.size)

    def counts(self) -> tuple[int, int]:
        """How many outcomes each arm has: ``(n_a, n_b)``."""
        n_b = int(np.count_nonzero(self.is_b))
        return len(self) - n_b, n_b


class RequestAssignment(BaseModel):
    """The arm that served one request, so outcomes reported later find their arm."""

    request_id: str = Field(description="Id returned in the embedding response.")
    test_name: str = Field(description="Experiment that routed the request.")
    arm: Arm = Field(description="'A' (control) or 'B' (candidate).")
    model_id: str = Field(description="Model that served it.")


class ExperimentStore(Protocol):
    """Where experiments, their outcomes, request arms and rollout states live.

    The framework and the rollout manager hold no other state worth keeping.  Implementations must
    be safe to call from several threads.  ``load_results`` is called on every analysis, so a
    persistent backend should serve it from an in-memory column cache that it fills at start-up and
    appends to on write.
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

    def append_results(self, test_name: str, batch: OutcomeBatch, *, request_id: str | None = None) -> None:
        """Append outcomes atomically (all or none); raise ``NotFoundError`` for an unknown test.

        With ``request_id`` the batch is the one outcome a client reported for that request: a second
        one for the same id raises ``AlreadyExistsError`` and stores nothing, even when two calls race
        (the check and the append are one atomic step).
        """
        ...

    def load_results(self, test_name: str) -> OutcomeColumns:
        """Every outcome so far (empty columns when there is none); ``NotFoundError`` if unknown."""
        ...

    def assign_request(self, assignment: RequestAssignment) -> bool:
        """Remember which arm served a request id; False (and nothing stored) if the id already has one.

        The first assignment wins: a client that reuses a request id cannot move an earlier request,
        and the outcome it reported, to another arm.
        """
        ...

    def find_request(self, request_id: str) -> RequestAssignment | None:
        """The arm that served ``request_id``, or ``None`` if no experiment routed it."""
        ...

    def save_rollout(self, test_name: str, state: str) -> None:
        """Store (or replace) the rollout state of an experiment, as JSON."""
        ...

    def load_rollouts(self) -> dict[str, str]:
        """Every stored rollout state (JSON), by experiment name."""
        ...


def check_one_outcome(batch: OutcomeBatch) -> None:
    """Refuse a batch of other than one outcome where a request id names it (stores call this)."""
    if len(batch) != 1:
        raise InvalidArgumentError(f"an outcome reported for a request id is one outcome, got {len(batch)}")


def outcome_exists(request_id: str) -> AlreadyExistsError:
    """The error for a second outcome reported for ``request_id`` (stores raise it)."""
    return AlreadyExistsError(
        f"an outcome for request id {quoted(request_id)} was already recorded; each request counts once",
        request_id=request_id[:MAX_REQUEST_ID_CHARS],
    )
