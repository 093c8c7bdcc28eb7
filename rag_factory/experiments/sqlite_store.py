"""Durable experiments in the registry database: tests, outcomes, request ids and rollout state.

Outcomes are appended to SQLite (an acknowledged outcome survives ``kill -9``) and mirrored in an
in-memory column cache per test; each read first pulls rows other processes appended since, so every
replica and the CLI see the same data without re-reading everything.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from rag_factory.errors import AlreadyExistsError, NotFoundError, describe_choices, quoted
from rag_factory.experiments.arms import CANDIDATE, arm_of
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
from rag_factory.storage.sqlite import SQLiteDatabase

MIGRATIONS = (
    (
        """CREATE TABLE ab_experiments (
            test_name TEXT PRIMARY KEY,
            record TEXT NOT NULL,
            started_at TEXT NOT NULL
        )""",
        """CREATE TABLE ab_outcomes (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            test_name TEXT NOT NULL,
            is_b INTEGER NOT NULL,
            ts REAL NOT NULL,
            split REAL NOT NULL,
            metrics TEXT NOT NULL
        )""",
        "CREATE INDEX ab_outcomes_test ON ab_outcomes (test_name, id)",
        # Which experiment arm ("A" or "B") served a request id, so outcomes reported later find their arm.
        """CREATE TABLE ab_requests (
            request_id TEXT PRIMARY KEY,
            test_name TEXT NOT NULL,
            variant TEXT NOT NULL,
            model_id TEXT NOT NULL,
            created_at REAL NOT NULL
        )""",
        """CREATE TABLE ab_rollouts (
            test_name TEXT PRIMARY KEY,
            state TEXT NOT NULL
        )""",
    ),
    (
        # The request id a client reported an outcome for (NULL for outcomes the server measured):
        # unique, so a request counts once even when two reports race, in any number of processes.
        "ALTER TABLE ab_outcomes ADD COLUMN request_id TEXT",
        "CREATE UNIQUE INDEX ab_outcomes_request ON ab_outcomes (request_id) WHERE request_id IS NOT NULL",
    ),
)


class SQLiteExperimentStore(SQLiteDatabase):
    """``ExperimentStore`` on the registry's SQLite file (``<registry>/registry.db``)."""

    def __init__(self, path: str | Path) -> None:
        super().__init__(path)
        self._migrate_component("ab_testing", MIGRATIONS)
        self._cache_lock = threading.Lock()
        self._tables: dict[str, OutcomeTable] = {}
        self._last_row: dict[str, int] = {}

    # -- experiments --------------------------------------------------------------------------------

    def save_test(self, record: ExperimentRecord) -> None:
        """Store a new experiment; ``AlreadyExistsError`` if its name is taken."""
        name = record.config.test_name
        with self._write() as conn:
            if conn.execute("SELECT 1 FROM ab_experiments WHERE test_name = ?", (name,)).fetchone():
                raise AlreadyExistsError(f"A/B test {name!r} already exists; choose another name", test_name=name)
            conn.execute(
                "INSERT INTO ab_experiments (test_name, record, started_at) VALUES (?, ?, ?)",
                (name, record.model_dump_json(), record.started_at.isoformat()),
            )

    def load_tests(self) -> list[ExperimentRecord]:
        """Every stored experiment, in start order."""
        rows = self._connection().execute("SELECT record FROM ab_experiments ORDER BY started_at, test_name")
        return [ExperimentRecord.model_validate_json(row[0]) for row in rows]

    def _update(self, test_name: str, change: dict[str, object]) -> None:
        with self._write() as conn:
            row = conn.execute("SELECT record FROM ab_experiments WHERE test_name = ?", (test_name,)).fetchone()
            if row is None:
                raise self._not_found(test_name)
            record = ExperimentRecord.model_validate_json(row[0])
            data = record.model_dump()
            for dotted, value in change.items():
                target = data
                *parents, leaf = dotted.split(".")
                for part in parents:
                    target = target[part]
                target[leaf] = value
            updated = ExperimentRecord.model_validate(data)
            conn.execute(
                "UPDATE ab_experiments SET record = ? WHERE test_name = ?", (updated.model_dump_json(), test_name)
            )

    def update_split(self, test_name: str, split: float) -> None:
        """Set the traffic split now in force."""
        self._update(test_name, {"config.traffic_split": split})

    def set_status(self, test_name: str, status: ExperimentStatus, at: datetime) -> None:
        """Change the lifecycle status (``at`` becomes ``stopped_at`` when stopping)."""
        self._update(test_name, {"status": status, "stopped_at": at if status == "stopped" else None})

    def _not_found(self, test_name: str) -> NotFoundError:
        names = [row[0] for row in self._connection().execute("SELECT test_name FROM ab_experiments")]
        return NotFoundError(
            f"A/B test {quoted(test_name)} is not stored; stored: {describe_choices(names)}",
            test_name=test_name[:QUOTE_CHARS],
        )

    # -- outcomes -----------------------------------------------------------------------------------

    def append_results(self, test_name: str, batch: OutcomeBatch, *, request_id: str | None = None) -> None:
        """Append outcomes atomically; they are on disk when this returns.

        With ``request_id`` (one outcome), the row carries the id and the unique index refuses a
        second one for it: ``AlreadyExistsError``, nothing stored.
        """
        if request_id is not None:
            check_one_outcome(batch)
        names = list(batch.metrics)
        columns = [np.asarray(batch.metrics[n], dtype=float) for n in names]
        rows = []
        for i in range(len(batch)):
            metrics = {n: float(c[i]) for n, c in zip(names, columns, strict=True) if not np.isnan(c[i])}
            rows.append(
                (
                    test_name,
                    int(batch.arm == CANDIDATE),
                    float(batch.timestamps[i]),
                    float(batch.splits[i]),
                    json.dumps(metrics),
                    request_id,
                )
            )
        with self._write() as conn:
            if not conn.execute("SELECT 1 FROM ab_experiments WHERE test_name = ?", (test_name,)).fetchone():
                raise self._not_found(test_name)
            try:
                conn.executemany(
                    "INSERT INTO ab_outcomes (test_name, is_b, ts, split, metrics, request_id) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    rows,
                )
            except sqlite3.IntegrityError as exc:
                if request_id is None:
                    raise
                raise outcome_exists(request_id) from exc  # the unique index on request_id

    def load_results(self, test_name: str) -> OutcomeColumns:
        """Every outcome so far, from the cache after pulling rows appended since the last read."""
        conn = self._connection()
        with self._cache_lock:
            if test_name not in self._tables:
                if not conn.execute("SELECT 1 FROM ab_experiments WHERE test_name = ?", (test_name,)).fetchone():
                    raise self._not_found(test_name)
                self._tables[test_name], self._last_row[test_name] = OutcomeTable(), 0
            rows = conn.execute(
                "SELECT id, is_b, ts, split, metrics FROM ab_outcomes WHERE test_name = ? AND id > ? ORDER BY id",
                (test_name, self._last_row[test_name]),
            ).fetchall()
            if rows:
                self._append_rows(test_name, rows)
            return self._tables[test_name].view()

    def _append_rows(self, test_name: str, rows: list[tuple[int, int, float, float, str]]) -> None:
        table = self._tables[test_name]
        decoded = [json.loads(row[4]) for row in rows]
        names = list(dict.fromkeys(name for metrics in decoded for name in metrics))  # first-seen order
        start = 0
        # Consecutive rows of one arm form one batch, so the cache keeps recording order.
        while start < len(rows):
            end = start
            while end < len(rows) and rows[end][1] == rows[start][1]:
                end += 1
            table.append(
                OutcomeBatch(
                    arm=arm_of(bool(rows[start][1])),
                    timestamps=np.array([row[2] for row in rows[start:end]]),
                    splits=np.array([row[3] for row in rows[start:end]]),
                    metrics={n: np.array([m.get(n, np.nan) for m in decoded[start:end]], dtype=float) for n in names},
                )
            )
            start = end
        self._last_row[test_name] = rows[-1][0]

    # -- request ids and rollout state ---------------------------------------------------------------

    def assign_request(self, assignment: RequestAssignment) -> bool:
        """Remember which arm served a request id; False (nothing changed) if the id already has one."""
        with self._write() as conn:
            cursor = conn.execute(
                # OR IGNORE: the first assignment wins, so a reused id cannot move a request to another arm.
                "INSERT OR IGNORE INTO ab_requests (request_id, test_name, variant, model_id, created_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (
                    assignment.request_id,
                    assignment.test_name,
                    assignment.arm,
                    assignment.model_id,
                    datetime.now(UTC).timestamp(),
                ),
            )
            return cursor.rowcount == 1

    def find_request(self, request_id: str) -> RequestAssignment | None:
        """The arm that served ``request_id``, if an experiment routed it."""
        row = (
            self._connection()
            .execute(
                "SELECT request_id, test_name, variant, model_id FROM ab_requests WHERE request_id = ?", (request_id,)
            )
            .fetchone()
        )
        if row is None:
            return None
        return RequestAssignment(request_id=row[0], test_name=row[1], arm=row[2], model_id=row[3])

    def save_rollout(self, test_name: str, state: str) -> None:
        """Store the rollout state (JSON) of an experiment."""
        with self._write() as conn:
            conn.execute("INSERT OR REPLACE INTO ab_rollouts (test_name, state) VALUES (?, ?)", (test_name, state))

    def load_rollouts(self) -> dict[str, str]:
        """Every stored rollout state (JSON), by experiment name."""
        return {row[0]: row[1] for row in self._connection().execute("SELECT test_name, state FROM ab_rollouts")}
