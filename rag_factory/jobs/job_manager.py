"""Start jobs in worker subprocesses (so serving stays responsive), watch, cancel and recover them."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rag_factory.errors import UnknownFormatError, describe_choices
from rag_factory.jobs.job_store import FINISHED, JobRecord, SQLiteJobStore
from rag_factory.jobs.kinds import JOB_KINDS
from rag_factory.storage import database_path

logger = logging.getLogger(__name__)


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


class JobManager:
    """Owns the worker processes of one registry.

    Args:
        registry_path: Registry directory; jobs live in its database and register results there.
        python: Interpreter for workers (this one by default).
    """

    def __init__(self, registry_path: str | Path, *, python: str = sys.executable) -> None:
        self.registry_path = Path(registry_path)
        self.store = SQLiteJobStore(database_path(self.registry_path))
        self.python = python
        self._processes: dict[str, subprocess.Popen[bytes]] = {}

    def recover(self) -> list[str]:
        """Mark jobs whose worker is gone (a restart, a crash) as interrupted; returns their ids."""
        lost = []
        for job in self.store.list_jobs():
            if not job.finished and not _alive(job.pid) and job.job_id not in self._processes:
                self.store.set_status(job.job_id, "interrupted", error="the worker stopped (sidecar restart or crash)")
                lost.append(job.job_id)
        return lost

    def start(self, kind: str, spec: dict[str, Any]) -> JobRecord:
        """Validate the spec, store the job and start its worker.

        Raises:
            UnknownFormatError: Unknown job kind.
            InvalidArgumentError (or the kind's own errors): The spec is invalid; nothing is started.
        """
        job_kind = JOB_KINDS.get(kind)
        if job_kind is None:
            raise UnknownFormatError(f"unknown job kind {kind!r}; kinds: {describe_choices(JOB_KINDS)}")
        job_kind.validate(spec, self.registry_path)
        job = self.store.create(kind, spec)
        log = (self.registry_path / "jobs").joinpath(f"{job.job_id}.log")
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("wb") as handle:
            process = subprocess.Popen(
                [self.python, "-m", "rag_factory.jobs.worker", job.job_id, str(self.registry_path)],
                stdout=handle, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        self._processes[job.job_id] = process
        self.store.set_status(job.job_id, "pending", pid=process.pid)
        return self.store.get(job.job_id)

    def cancel(self, job_id: str) -> JobRecord:
        """Ask a job to stop; its worker stops at the next step and registers nothing."""
        job = self.store.request_cancel(job_id)
        if _alive(job.pid):
            os.kill(int(job.pid or 0), signal.SIGTERM)
        return job

    def watch(self, job_id: str, *, poll_s: float = 0.2, after: int = 0) -> Iterator[tuple[int, dict[str, Any]]]:
        """Yield ``(sequence, event)`` as they arrive, until the job has finished and all are sent."""
        last = after
        while True:
            job = self.store.get(job_id)
            # Read events after reading the status: a finished job's final events are then all there.
            for sequence, event in self.store.events_after(job_id, last):
                last = sequence
                yield sequence, event
            if job.finished:
                return
            if job_id in self._processes and self._processes[job_id].poll() is not None and not job.finished:
                self.recover()
            time.sleep(poll_s)

    def wait(self, job_id: str, timeout_s: float | None = None) -> JobRecord:
        """Block until a job finishes (or ``timeout_s`` passes) and return it."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            job = self.store.get(job_id)
            if job.status in FINISHED or (deadline is not None and time.monotonic() > deadline):
                return job
            process = self._processes.get(job_id)
            if process is not None and process.poll() is not None:
                self.recover()
            time.sleep(0.2)

    def close(self) -> None:
        """Release the database (workers keep running and finish on their own)."""
        self.store.close()
