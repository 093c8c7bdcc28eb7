"""No acknowledged write is lost when ``rag-factory serve`` is killed with SIGKILL (issue 18, "What this issue
must show": 0 acknowledged writes lost over the kill -9 runs).

Clients register models (some with artifacts), report A/B outcomes for requests a running experiment routed,
and start a job, all at once, while the server process is killed at a random moment. After each kill the
database must pass ``PRAGMA integrity_check``, a new server must start on it, and every write acknowledged in
any cycle so far must be found; jobs whose worker died with the host must have ended rather than stay
RUNNING. ``benchmarks/reliability_run.py`` runs the same cycles 30 times or more.
"""

from __future__ import annotations

import random
import uuid
from pathlib import Path

import pytest

from rag_factory.storage import database_path
from tests.conftest import register_minilm_onnx
from tests.sidecar.fuzz_client import integrity, kill_workers
from tests.sidecar.reliability_kills import (
    KillRun,
    Workload,
    kill_cycle,
    staging_leftovers,
    start_experiment,
    verify_artifacts,
)

pytestmark = pytest.mark.slow

KILLS = 3
SEED = 18  # the kill moments are random but the same on every run


def test_every_acknowledged_write_survives_kill_dash_nine(
    private_registry_path: Path, onnx_export_dir: Path, tmp_path: Path
) -> None:
    register_minilm_onnx(private_registry_path, "minilm-next", "1.5.0", onnx_export_dir)  # the experiment's arm B
    run = KillRun(
        registry=private_registry_path, cache=tmp_path / "cache", workdir=tmp_path / "serve", roots=[tmp_path],
        work=Workload(run=f"k{uuid.uuid4().hex[:6]}", artifacts=tmp_path / "artifacts"),
    )  # fmt: skip
    rng = random.Random(SEED)
    server = run.start()
    try:
        start_experiment(server.address)
        for _ in range(KILLS):
            server = kill_cycle(run, server, rng, window_s=(1.5, 4.0))
    finally:
        server.stop()
        kill_workers(private_registry_path)

    acknowledged = run.ledger.acknowledged()
    print(f"kills: {run.kills}, sent: {run.ledger.sent}, acknowledged: {acknowledged}, refused: {run.ledger.refused}")
    print(f"experiment: {run.experiment}; .staging-* folders left: {staging_leftovers(private_registry_path)}")
    assert run.problems + verify_artifacts(private_registry_path, run.ledger) == []
    assert run.integrity == ["ok"] * KILLS
    assert integrity(database_path(private_registry_path)) == "ok"
    # Otherwise the kills proved nothing about that kind of write.
    assert all(acknowledged[kind] > 0 for kind in ("registrations", "outcomes", "jobs")), (
        acknowledged,
        run.ledger.refused,
    )
