"""Metric history per model version, dataset, split and time, stored in the registry database.

This module is the only place that knows the history's SQL. It shares ``registry.db`` with the
registry and applies its own migrations under the component name ``metric_history``. It takes plain
metric values; whoever evaluates records them (see ``rag_factory.models.evaluation.recording``).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from rag_factory.errors import InvalidArgumentError
from rag_factory.models.embedding.records import check_metrics, utcnow
from rag_factory.storage import database_path
from rag_factory.storage.sqlite import SQLiteDatabase

if TYPE_CHECKING:
    from rag_factory.models.embedding.registry import ModelRegistry

COMPONENT = "metric_history"
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """
        CREATE TABLE metric_history (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            run_id TEXT NOT NULL,
            model_id TEXT NOT NULL,
            model_name TEXT NOT NULL,
            version TEXT NOT NULL,
            dataset TEXT NOT NULL,
            dataset_hash TEXT NOT NULL,
            split TEXT NOT NULL,
            metric TEXT NOT NULL,
            value REAL NOT NULL,
            recorded_at TEXT NOT NULL
        )
        """,
        "CREATE INDEX metric_history_series ON metric_history (model_id, dataset, split, metric, recorded_at)",
        "CREATE INDEX metric_history_by_name ON metric_history (model_name, dataset, split, metric)",
    ),
)

_COLUMNS = "run_id, model_id, model_name, version, dataset, dataset_hash, split, metric, value, recorded_at"


class MetricPoint(BaseModel):
    """One metric value of one model version on one dataset split at one time."""

    model_config = ConfigDict(protected_namespaces=(), frozen=True)

    run_id: str = Field(description="Evaluation run that produced the value; shared by its metrics.")
    model_id: str = Field(description="Registered model id.")
    model_name: str = Field(description="Model name (the versions of one name form a history).")
    version: str = Field(description="Semver of the model version.")
    dataset: str = Field(description="Dataset name.")
    dataset_hash: str = Field(description="Content hash of the dataset files ('' when unknown).")
    split: str = Field(description="qrels split.")
    metric: str = Field(description="Metric name, e.g. 'ndcg@10'.")
    value: float = Field(description="The value.")
    recorded_at: datetime = Field(description="When it was measured (UTC).")


def _timestamp(moment: datetime) -> str:
    # One fixed-width UTC format, so text order is time order in SQL.
    if moment.tzinfo is None:
        raise InvalidArgumentError("timestamps must be timezone-aware (UTC)")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


class MetricHistory(SQLiteDatabase):
    """Append-only metric history; safe to share between processes (WAL, durable writes).

    Args:
        path: The SQLite file, normally the registry's ``registry.db``.
    """

    def __init__(self, path: str | Path) -> None:
        super().__init__(path)
        self._migrate_component(COMPONENT, MIGRATIONS)

    @classmethod
    def for_registry(cls, registry: ModelRegistry) -> MetricHistory:
        """The history stored next to ``registry``'s models, in its ``registry.db``."""
        return cls(database_path(registry.path))

    def record(
        self,
        *,
        model_id: str,
        model_name: str,
        version: str,
        dataset: str,
        split: str,
        metrics: Mapping[str, float],
        dataset_hash: str = "",
        recorded_at: datetime | None = None,
    ) -> str:
        """Append one evaluation's metrics; returns its run id.

        Args:
            model_id: Registered model id.
            model_name: Model name (the versions of one name form a history).
            version: Semver of the model version.
            dataset: Dataset name.
            split: qrels split.
            metrics: Metric name -> value, all stored under one run id.
            dataset_hash: Content hash of the dataset files ('' when unknown).
            recorded_at: When the values were measured (UTC); now if None.

        Raises:
            InvalidArgumentError: An empty id, dataset or split, an empty metric name, a value that
                is not finite, or a naive timestamp.
        """
        for field, value in (("model_id", model_id), ("dataset", dataset), ("split", split)):
            if not value.strip():
                raise InvalidArgumentError(f"{field} must not be empty")
        check_metrics(metrics)
        run_id = uuid.uuid4().hex
        stamp = _timestamp(recorded_at or utcnow())
        rows = [
            (run_id, model_id, model_name, version, dataset, dataset_hash, split, name, float(value), stamp)
            for name, value in metrics.items()
        ]
        with self._write() as conn:
            conn.executemany(f"INSERT INTO metric_history ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        return run_id

    def query(
        self,
        *,
        model_id: str | None = None,
        model_name: str | None = None,
        dataset: str | None = None,
        split: str | None = None,
        metric: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[MetricPoint]:
        """Every stored point matching all the given filters, oldest first.

        Args:
            model_id: One model version.
            model_name: Every version of one name.
            dataset: Dataset name.
            split: qrels split.
            metric: Metric name.
            since: Points recorded at or after this time.
            until: Points recorded before this time.
        """
        clauses: list[str] = []
        params: list[Any] = []
        for column, value in (
            ("model_id", model_id),
            ("model_name", model_name),
            ("dataset", dataset),
            ("split", split),
            ("metric", metric),
        ):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        if since is not None:
            clauses.append("recorded_at >= ?")
            params.append(_timestamp(since))
        if until is not None:
            clauses.append("recorded_at < ?")
            params.append(_timestamp(until))
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = (
            self._connection()
            .execute(f"SELECT {_COLUMNS} FROM metric_history {where} ORDER BY recorded_at, id", params)
            .fetchall()
        )
        return [self._point(row) for row in rows]

    def latest(self, *, model_id: str | None = None, model_name: str | None = None) -> list[MetricPoint]:
        """The most recently recorded value of every (model id, dataset, split, metric) series."""
        clauses, params = [], []
        if model_id is not None:
            clauses.append("model_id = ?")
            params.append(model_id)
        if model_name is not None:
            clauses.append("model_name = ?")
            params.append(model_name)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        # The highest id of a series is its newest row: ids only grow.
        rows = (
            self._connection()
            .execute(
                f"SELECT {_COLUMNS} FROM metric_history WHERE id IN ("
                f"  SELECT MAX(id) FROM metric_history {where} GROUP BY model_id, dataset, split, metric"
                ") ORDER BY model_id, dataset, split, metric",
                params,
            )
            .fetchall()
        )
        return [self._point(row) for row in rows]

    @staticmethod
    def _point(row: Any) -> MetricPoint:
        return MetricPoint(
            run_id=row["run_id"],
            model_id=row["model_id"],
            model_name=row["model_name"],
            version=row["version"],
            dataset=row["dataset"],
            dataset_hash=row["dataset_hash"],
            split=row["split"],
            metric=row["metric"],
            value=row["value"],
            recorded_at=_parse(row["recorded_at"]),
        )
