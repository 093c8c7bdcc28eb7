"""``InMemoryExperimentStore``: the default, columnar :class:`ExperimentStore`, kept in process memory."""

from __future__ import annotations

import threading
from datetime import datetime

from rag_factory.errors import AlreadyExistsError, NotFoundError, describe_choices, quoted
from rag_factory.experiments.limits import QUOTE_CHARS
from rag_factory.experiments.outcome_table import OutcomeTable
from rag_factory.experiments.store import (
    ExperimentRecord,
    ExperimentStatus,
    OutcomeBatch,
    OutcomeColumns,
    RequestAssignment,
    check_one_outcome,
    outcome_exists,
)


class InMemoryExperimentStore:
    """The default :class:`ExperimentStore`: everything in process memory, lost on exit; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: dict[str, ExperimentRecord] = {}
        self._tables: dict[str, OutcomeTable] = {}
        self._assignments: dict[str, RequestAssignment] = {}
        self._reported: set[str] = set()  # request ids that have their one client outcome
        self._rollouts: dict[str, str] = {}

    def _record(self, test_name: str) -> ExperimentRecord:
        record = self._records.get(test_name)
        if record is None:
            raise NotFoundError(
                f"A/B test {quoted(test_name)} is not stored; stored: {describe_choices(self._records)}",
                test_name=test_name[:QUOTE_CHARS],
            )
        return record

    # -- experiments --------------------------------------------------------------------------------

    def save_test(self, record: ExperimentRecord) -> None:
        """Store a new experiment (a copy); raise ``AlreadyExistsError`` if its name is taken."""
        name = record.config.test_name
        with self._lock:
            if name in self._records:
                raise AlreadyExistsError(f"A/B test {name!r} already exists", test_name=name)
            self._records[name] = record.model_copy(deep=True)
            self._tables[name] = OutcomeTable()

    def load_tests(self) -> list[ExperimentRecord]:
        """Copies of every stored experiment, in start order."""
        with self._lock:
            records = sorted(self._records.values(), key=lambda r: (r.started_at, r.config.test_name))
            return [record.model_copy(deep=True) for record in records]

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

    # -- outcomes -----------------------------------------------------------------------------------

    def append_results(self, test_name: str, batch: OutcomeBatch, *, request_id: str | None = None) -> None:
        """Append outcomes to the test's columns; with ``request_id``, at most once per id."""
        with self._lock:
            self._record(test_name)
            if request_id is not None:
                check_one_outcome(batch)
                if request_id in self._reported:
                    raise outcome_exists(request_id)
                self._reported.add(request_id)
            self._tables[test_name].append(batch)

    def load_results(self, test_name: str) -> OutcomeColumns:
        """Read-only views of every outcome so far (no copy)."""
        with self._lock:
            self._record(test_name)
            return self._tables[test_name].view()

    # -- request ids and rollout state ---------------------------------------------------------------

    def assign_request(self, assignment: RequestAssignment) -> bool:
        """Remember which arm served a request id (a copy); False if the id already has an arm."""
        with self._lock:
            if assignment.request_id in self._assignments:
                return False
            self._assignments[assignment.request_id] = assignment.model_copy()
            return True

    def find_request(self, request_id: str) -> RequestAssignment | None:
        """The arm that served ``request_id`` (a copy), if an experiment routed it."""
        with self._lock:
            found = self._assignments.get(request_id)
            return None if found is None else found.model_copy()

    def save_rollout(self, test_name: str, state: str) -> None:
        """Store the rollout state (JSON) of an experiment."""
        with self._lock:
            self._rollouts[test_name] = state

    def load_rollouts(self) -> dict[str, str]:
        """Every stored rollout state (JSON), by experiment name."""
        with self._lock:
            return dict(self._rollouts)
