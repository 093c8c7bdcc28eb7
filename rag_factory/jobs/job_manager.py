"""Start jobs in worker subprocesses (so serving stays responsive), watch, cancel and recover them.

A job ends in a finished state on every path, including the ones its worker cannot report:

* a worker that dies (``kill -9``, out of memory, a crash before it opened the database) is noticed
  by the next call that reads jobs (``get``, ``list_jobs``, ``watch``, ``wait``, ``start``): its job
  becomes ``failed`` with the exit code or signal, or ``cancelled`` when a cancel was asked for;
* a cancel asked for before the worker started is honoured by the worker, and one the worker does not
  act on within ``cancel_grace_s`` ends with SIGKILL;
* jobs of workers this manager did not start (a previous sidecar's) become ``interrupted`` once their
  process is gone.

Watches end when the job finishes or when the caller stops wanting them (a gRPC client that went away
or whose deadline passed), so no watch holds a server thread forever. At most ``max_concurrent_jobs``
workers run at once; a further ``start`` answers RESOURCE_EXHAUSTED at once rather than queueing,
so a client learns immediately that it must wait, and nothing queued is lost to a restart.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from rag_factory.errors import ResourceExhaustedError, UnavailableError, UnknownFormatError, describe_choices
from rag_factory.jobs.job_store import ACTIVE, FINISHED, JobRecord, JobStatus, SQLiteJobStore
from rag_factory.jobs.kinds import JOB_KINDS
from rag_factory.storage import database_path

logger = logging.getLogger(__name__)

# A job another process created has no worker pid for a moment; only after this long is it orphaned.
_UNSTARTED_GRACE_S = 60.0
# Watches and waits share one check of the workers per interval instead of one each per poll.
_CHECK_INTERVAL_S = 0.2


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


def describe_exit(returncode: int) -> str:
    """``exited with code 3`` or ``was killed by signal 9 (SIGKILL)``, for a ``Popen.returncode``."""
    if returncode >= 0:
        return f"exited with code {returncode}"
    try:
        name = signal.Signals(-returncode).name
    except ValueError:
        return f"was killed by signal {-returncode}"
    return f"was killed by signal {-returncode} ({name})"


class JobManager:
    """Owns the worker processes of one registry.

    Args:
        registry_path: Registry directory; jobs live in its database and register results there.
        python: Interpreter for workers (this one by default).
        max_concurrent_jobs: Workers that may run at once; one more ``start`` raises
            ResourceExhaustedError. Fine-tuning takes every core it gets, so the default is one.
        cancel_grace_s: How long a cancelled worker may take to stop on its own before it is killed.
    """

    def __init__(
        self,
        registry_path: str | Path,
        *,
        python: str = sys.executable,
        max_concurrent_jobs: int = 1,
        cancel_grace_s: float = 60.0,
    ) -> None:
        if max_concurrent_jobs < 1:
            raise ValueError("max_concurrent_jobs must be at least 1")
        self.registry_path = Path(registry_path)
        self.store = SQLiteJobStore(database_path(self.registry_path))
        self.python = python
        self.max_concurrent_jobs = max_concurrent_jobs
        self.cancel_grace_s = cancel_grace_s
        self._processes: dict[str, subprocess.Popen[bytes]] = {}
        self._cancelled_at: dict[str, float] = {}  # job id -> monotonic time of its first cancel
        self._lock = threading.Lock()  # guards the two dicts and makes "count, then start" atomic
        self._last_check = 0.0

    def recover(self) -> list[str]:
        """Mark jobs whose worker is gone (a restart, a crash) as interrupted; returns their ids."""
        with self._lock:
            return self._recover_others(grace_s=0.0)

    def check_workers(self, *, force: bool = True) -> list[str]:
        """Finish the jobs whose worker stopped without recording an outcome; returns their ids.

        Also kills cancelled workers that outlived ``cancel_grace_s``. With ``force=False`` nothing is
        done when another call checked within the last fraction of a second.
        """
        with self._lock:
            now = time.monotonic()
            if not force and now - self._last_check < _CHECK_INTERVAL_S:
                return []
            self._last_check = now
            ended = [job_id for job_id in list(self._processes) if self._check_worker(job_id)]
            return ended + self._recover_others(grace_s=_UNSTARTED_GRACE_S)

    def _check_worker(self, job_id: str) -> bool:
        process = self._processes[job_id]
        returncode = process.poll()
        if returncode is None:
            cancelled_at = self._cancelled_at.get(job_id)
            if cancelled_at is not None and time.monotonic() - cancelled_at > self.cancel_grace_s:
                logger.warning(
                    "job %s did not stop within %.0f s of its cancel; killing it", job_id, self.cancel_grace_s
                )
                process.kill()
            return False
        del self._processes[job_id]
        self._cancelled_at.pop(job_id, None)
        job = self.store.get(job_id)
        if job.finished:  # the worker recorded its outcome, then exited
            return False
        status: JobStatus
        if job.status == "cancelling":
            status, message = "cancelled", f"cancelled; the worker {describe_exit(returncode)} while stopping"
        else:
            status, message = "failed", f"the worker process {describe_exit(returncode)} before the job finished"
        # The event first: a watcher that sees the final status then finds every event already there.
        self.store.append_event(job_id, {"kind": status, "message": message})
        return self.store.set_status(job_id, status, error=message, only_from=ACTIVE)

    def _recover_others(self, *, grace_s: float) -> list[str]:
        # Jobs of workers this manager did not start: it can only see whether their process exists.
        lost = []
        for job in self.store.active_jobs():
            if job.job_id in self._processes or _alive(job.pid):
                continue
            if job.pid is None and time.time() - job.created_at.timestamp() < grace_s:
                continue  # just created by another process, which has not started its worker yet
            if self.store.set_status(
                job.job_id, "interrupted", error="the worker stopped (sidecar restart or crash)", only_from=ACTIVE
            ):
                lost.append(job.job_id)
        return lost

    def _running(self) -> int:
        return sum(1 for process in self._processes.values() if process.poll() is None)

    def _check_capacity(self) -> None:
        running = self._running()
        if running >= self.max_concurrent_jobs:
            raise ResourceExhaustedError(
                f"{running} job(s) running and this server runs at most {self.max_concurrent_jobs} at a time; "
                "start this one when a running job has finished (WatchJob) or been cancelled"
            )

    def start(self, kind: str, spec: dict[str, Any]) -> JobRecord:
        """Validate the spec, store the job and start its worker.

        Raises:
            UnknownFormatError: Unknown job kind.
            InvalidArgumentError (or the kind's own errors): The spec is invalid; nothing is started.
            ResourceExhaustedError: ``max_concurrent_jobs`` workers are running; nothing is started.
            UnavailableError: The worker process could not be started (the job is stored as failed).
        """
        job_kind = JOB_KINDS.get(kind)
        if job_kind is None:
            raise UnknownFormatError(f"unknown job kind {kind!r}; kinds: {describe_choices(JOB_KINDS)}")
        self.check_workers()
        with self._lock:
            self._check_capacity()  # early, to spare a refused client the validation below
        job_kind.validate(spec, self.registry_path)
        self.check_workers()
        with self._lock:
            self._check_capacity()  # again: another start may have taken the slot while this one validated
            job = self.store.create(kind, spec)
            process = self._spawn(job.job_id)
            self._processes[job.job_id] = process
            # Only while still pending: a fast worker may already have moved it to running.
            self.store.set_status(job.job_id, "pending", pid=process.pid, only_from=("pending",))
        return self.store.get(job.job_id)

    def _spawn(self, job_id: str) -> subprocess.Popen[bytes]:
        log = (self.registry_path / "jobs").joinpath(f"{job_id}.log")
        try:
            log.parent.mkdir(parents=True, exist_ok=True)
            with log.open("wb") as handle:
                return subprocess.Popen(
                    [self.python, "-m", "rag_factory.jobs.worker", job_id, str(self.registry_path)],
                    stdout=handle, stderr=subprocess.STDOUT, start_new_session=True,
                )  # fmt: skip
        except OSError as exc:
            logger.exception("could not start the worker of job %s", job_id)
            self.store.set_status(job_id, "failed", error="the worker process could not be started")
            raise UnavailableError("the worker process of the job could not be started; see the server log") from exc

    def cancel(self, job_id: str) -> JobRecord:
        """Ask a job to stop; its worker stops at the next step and registers nothing.

        Raises:
            NotFoundError: Unknown id.
            FailedPreconditionError: The job has already finished (a dead worker's job counts as failed).
        """
        self.check_workers()
        with self._lock:
            job = self.store.request_cancel(job_id)
            self._cancelled_at.setdefault(job_id, time.monotonic())
            process = self._processes.get(job_id)
            if process is not None:
                if process.poll() is None:  # not reaped, so its pid is still this worker's
                    process.send_signal(signal.SIGTERM)
            elif _alive(job.pid):
                os.kill(int(job.pid or 0), signal.SIGTERM)
        self.check_workers()  # a worker that was already gone: cancelled now, not at the next read
        return self.store.get(job_id)

    def get(self, job_id: str) -> JobRecord:
        """One job, after noticing dead workers (see :meth:`check_workers`).

        Raises:
            NotFoundError: Unknown id.
        """
        self.check_workers(force=False)
        return self.store.get(job_id)

    def list_jobs(self) -> list[JobRecord]:
        """Every job, newest first, after noticing dead workers."""
        self.check_workers(force=False)
        return self.store.list_jobs()

    def watch(
        self,
        job_id: str,
        *,
        poll_s: float = 0.2,
        after: int = 0,
        keep_going: Callable[[], bool] = lambda: True,
    ) -> Iterator[tuple[int, dict[str, Any]]]:
        """Yield ``(sequence, event)`` as they arrive, until the job has finished and all are sent.

        Args:
            job_id: The job.
            poll_s: Seconds between looks at the database.
            after: Only events with a higher sequence number.
            keep_going: Asked before each look; the watch ends quietly once it returns False (a gRPC
                servicer passes ``context.is_active``, so a client that left or ran out of time frees
                its thread within ``poll_s``).

        Raises:
            NotFoundError: Unknown id.
        """
        last = after
        while keep_going():
            job = self.get(job_id)
            # Read events after reading the status: a finished job's final events are then all there.
            for sequence, event in self.store.events_after(job_id, last):
                last = sequence
                yield sequence, event
            if job.finished:
                return
            time.sleep(poll_s)

    def wait(self, job_id: str, timeout_s: float | None = None) -> JobRecord:
        """Block until a job finishes (or ``timeout_s`` passes) and return it."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            job = self.get(job_id)
            if job.status in FINISHED or (deadline is not None and time.monotonic() > deadline):
                return job
            time.sleep(0.2)

    def close(self) -> None:
        """Release the database (workers keep running and finish on their own)."""
        self.store.close()
