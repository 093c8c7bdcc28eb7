"""``python -m rag_factory.jobs.worker JOB_ID REGISTRY``: run one job, recording events and the outcome."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import traceback
from pathlib import Path
from typing import Any

from rag_factory.errors import RagFactoryError, TrainingCancelledError
from rag_factory.jobs.job_store import SQLiteJobStore
from rag_factory.jobs.kinds import JOB_KINDS
from rag_factory.storage import database_path


def main(job_id: str, registry_path: Path) -> int:
    """Run the job; every path ends with a finished status in the database."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    store = SQLiteJobStore(database_path(registry_path))
    cancel = threading.Event()
    # SIGTERM from JobManager.cancel: stop at the next training step.
    signal.signal(signal.SIGTERM, lambda signum, frame: cancel.set())
    job = store.get(job_id)

    def emit(event: dict[str, Any]) -> None:
        store.append_event(job_id, event)
        if store.get(job_id).status == "cancelling":
            cancel.set()

    if not store.set_status(job_id, "running", pid=os.getpid(), only_from=("pending",)):
        # Cancelled before this worker got going: say so, or the job would stay "cancelling".
        if store.get(job_id).status != "cancelling":
            return 1
        # The event first, as on every path: a watcher that sees the final status has every event.
        store.append_event(job_id, {"kind": "cancelled", "message": "cancelled before it started"})
        store.set_status(job_id, "cancelled", error="cancelled before it started", only_from=("cancelling",))
        return 0
    try:
        result = JOB_KINDS[job.kind].run(job.spec, registry_path, emit, cancel)
    except TrainingCancelledError as exc:
        store.append_event(job_id, {"kind": "cancelled", "message": exc.message})
        store.set_status(job_id, "cancelled", error=exc.message)
        return 0
    except RagFactoryError as exc:
        store.append_event(job_id, {"kind": "failed", "message": exc.message})
        store.set_status(job_id, "failed", error=f"{exc.reason}: {exc.message}")
        return 1
    except Exception as exc:
        traceback.print_exc()
        store.append_event(job_id, {"kind": "failed", "message": f"{type(exc).__name__}: {exc}"})
        store.set_status(job_id, "failed", error=f"{type(exc).__name__}: {exc}")
        return 1
    if cancel.is_set():
        store.set_status(job_id, "cancelled", error="cancelled")
        return 0
    store.append_event(job_id, {"kind": "done", "message": "finished", "result": result})
    store.set_status(job_id, "succeeded", result=result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1], Path(sys.argv[2])))
