"""Jobs and their events in the registry database, so any process can start, watch or cancel them."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from rag_factory.errors import FailedPreconditionError, NotFoundError, describe_choices, quoted
from rag_factory.storage.sqlite import SQLiteDatabase

JobStatus = Literal["pending", "running", "cancelling", "succeeded", "failed", "cancelled", "interrupted"]
FINISHED: tuple[JobStatus, ...] = ("succeeded", "failed", "cancelled", "interrupted")
ACTIVE: tuple[JobStatus, ...] = ("pending", "running", "cancelling")
# SQLite integers are signed 64-bit; a client's uint64 ``after_sequence`` may be larger.
MAX_SEQUENCE = 2**63 - 1

MIGRATIONS = (
    (
        """CREATE TABLE jobs (
            job_id TEXT PRIMARY KEY,
            kind TEXT NOT NULL,
            spec TEXT NOT NULL,
            status TEXT NOT NULL,
            pid INTEGER,
            result TEXT,
            error TEXT NOT NULL DEFAULT '',
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        )""",
        """CREATE TABLE job_events (
            job_id TEXT NOT NULL,
            sequence INTEGER NOT NULL,
            event TEXT NOT NULL,
            PRIMARY KEY (job_id, sequence)
        )""",
    ),
)


class JobRecord(BaseModel):
    """One job as stored."""

    job_id: str = Field(description="Unique id.")
    kind: str = Field(description="Job kind, e.g. 'fine_tune'.")
    spec: dict[str, Any] = Field(description="The job's parameters (the kind's config as JSON).")
    status: JobStatus = Field(description="pending, running, cancelling, or a finished state.")
    pid: int | None = Field(default=None, description="Worker process id while it runs.")
    result: dict[str, Any] | None = Field(default=None, description="What a succeeded job produced.")
    error: str = Field(default="", description="Why a job failed.")
    created_at: datetime = Field(description="When it was submitted (UTC).")
    updated_at: datetime = Field(description="Last status change (UTC).")

    @property
    def finished(self) -> bool:
        """Whether the job has ended (in any way)."""
        return self.status in FINISHED


def _now() -> str:
    return datetime.now(UTC).isoformat()


class SQLiteJobStore(SQLiteDatabase):
    """Jobs table plus an append-only event log per job."""

    def __init__(self, path: str | Path) -> None:
        super().__init__(path)
        self._migrate_component("jobs", MIGRATIONS)

    def create(self, kind: str, spec: dict[str, Any]) -> JobRecord:
        """Store a new pending job."""
        job_id = f"{kind}-{uuid.uuid4().hex[:12]}"
        now = _now()
        with self._write() as conn:
            conn.execute(
                "INSERT INTO jobs (job_id, kind, spec, status, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)",
                (job_id, kind, json.dumps(spec), "pending", now, now),
            )
        return self.get(job_id)

    def get(self, job_id: str) -> JobRecord:
        """One job.

        Raises:
            NotFoundError: Unknown id.
        """
        row = self._connection().execute("SELECT * FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
        if row is None:
            known = [r[0] for r in self._connection().execute("SELECT job_id FROM jobs ORDER BY created_at DESC")]
            raise NotFoundError(
                f"job {quoted(job_id)} does not exist; jobs: {describe_choices(known)}", job_id=job_id[:80]
            )
        return JobRecord(
            job_id=row["job_id"], kind=row["kind"], spec=json.loads(row["spec"]), status=row["status"],
            pid=row["pid"], result=json.loads(row["result"]) if row["result"] else None, error=row["error"],
            created_at=datetime.fromisoformat(row["created_at"]), updated_at=datetime.fromisoformat(row["updated_at"]),
        )  # fmt: skip

    def list_jobs(self) -> list[JobRecord]:
        """Every job, newest first."""
        ids = [r[0] for r in self._connection().execute("SELECT job_id FROM jobs ORDER BY created_at DESC")]
        return [self.get(job_id) for job_id in ids]

    def active_jobs(self) -> list[JobRecord]:
        """Jobs that have not finished (pending, running or cancelling), oldest first."""
        rows = self._connection().execute(
            f"SELECT job_id FROM jobs WHERE status IN ({', '.join('?' * len(ACTIVE))}) ORDER BY created_at", ACTIVE
        )
        return [self.get(r[0]) for r in rows.fetchall()]

    def set_status(
        self,
        job_id: str,
        status: JobStatus,
        *,
        pid: int | None = None,
        result: dict[str, Any] | None = None,
        error: str = "",
        only_from: tuple[JobStatus, ...] | None = None,
    ) -> bool:
        """Change a job's status; with ``only_from`` the change happens only from those states."""
        with self._write() as conn:
            row = conn.execute("SELECT status FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
            if row is None:
                raise NotFoundError(f"job {quoted(job_id)} does not exist", job_id=job_id[:80])
            if only_from is not None and row[0] not in only_from:
                return False
            conn.execute(
                "UPDATE jobs SET status = ?, pid = COALESCE(?, pid), result = COALESCE(?, result), "
                "error = CASE WHEN ? = '' THEN error ELSE ? END, updated_at = ? WHERE job_id = ?",
                (status, pid, json.dumps(result) if result is not None else None, error, error, _now(), job_id),
            )
        return True

    def request_cancel(self, job_id: str) -> JobRecord:
        """Ask a running job to stop.

        Raises:
            FailedPreconditionError: The job has already finished.
        """
        if not self.set_status(job_id, "cancelling", only_from=ACTIVE):
            raise FailedPreconditionError(f"job {quoted(job_id)} has already finished ({self.get(job_id).status})")
        return self.get(job_id)

    def append_event(self, job_id: str, event: dict[str, Any]) -> int:
        """Append one progress event; returns its sequence number (from 1)."""
        with self._write() as conn:
            row = conn.execute(
                "SELECT COALESCE(MAX(sequence), 0) FROM job_events WHERE job_id = ?", (job_id,)
            ).fetchone()
            sequence = int(row[0]) + 1
            conn.execute(
                "INSERT INTO job_events (job_id, sequence, event) VALUES (?, ?, ?)",
                (job_id, sequence, json.dumps(event, default=str)),
            )
        return sequence

    def events_after(self, job_id: str, sequence: int) -> list[tuple[int, dict[str, Any]]]:
        """Events with a sequence number above ``sequence``, in order (none above :data:`MAX_SEQUENCE`)."""
        rows = self._connection().execute(
            "SELECT sequence, event FROM job_events WHERE job_id = ? AND sequence > ? ORDER BY sequence",
            (job_id, min(max(sequence, 0), MAX_SEQUENCE)),
        )
        return [(int(r[0]), json.loads(r[1])) for r in rows]
