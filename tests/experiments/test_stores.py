"""Every ExperimentStore keeps experiments, outcomes, request arms and rollout states alike (memory and SQLite)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from rag_factory.errors import AlreadyExistsError, NotFoundError
from rag_factory.experiments.arms import CANDIDATE, CONTROL, Arm
from rag_factory.experiments.memory_store import InMemoryExperimentStore
from rag_factory.experiments.sqlite_store import SQLiteExperimentStore
from rag_factory.experiments.store import (
    ExperimentRecord,
    ExperimentStore,
    OutcomeBatch,
    RequestAssignment,
)
from rag_factory.models.embedding.models import ABTestConfig

STARTED = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ExperimentStore]:
    """Each store implementation, empty."""
    if request.param == "memory":
        yield InMemoryExperimentStore()
        return
    sqlite = SQLiteExperimentStore(tmp_path / "registry.db")
    yield sqlite
    sqlite.close()


def _record(name: str = "t", split: float = 0.1, started: datetime = STARTED) -> ExperimentRecord:
    return ExperimentRecord(
        config=ABTestConfig(test_name=name, model_a_id="a", model_b_id="b", traffic_split=split), started_at=started
    )


def _batch(arm: Arm, metrics: dict[str, list[float]], split: float = 0.1, at: float = 1_700_000_000.0) -> OutcomeBatch:
    n = len(next(iter(metrics.values())))
    return OutcomeBatch(
        arm=arm,
        timestamps=np.full(n, at),
        splits=np.full(n, split),
        metrics={name: np.asarray(values, dtype=float) for name, values in metrics.items()},
    )


def test_saved_tests_load_back_in_start_order_as_copies(store: ExperimentStore) -> None:
    later = _record("later", started=STARTED.replace(hour=13))
    store.save_test(later)
    store.save_test(_record("earlier"))
    loaded = store.load_tests()
    assert [r.config.test_name for r in loaded] == ["earlier", "later"]
    assert loaded[1] == later
    loaded[1].config.traffic_split = 0.9  # a caller's copy: the store does not change
    assert store.load_tests()[1].config.traffic_split == 0.1


def test_a_test_name_is_taken_once(store: ExperimentStore) -> None:
    store.save_test(_record())
    with pytest.raises(AlreadyExistsError, match="'t' already exists"):
        store.save_test(_record(split=0.5))
    assert [r.config.traffic_split for r in store.load_tests()] == [0.1]


def test_split_and_status_changes_are_stored(store: ExperimentStore) -> None:
    store.save_test(_record())
    stopped_at = STARTED.replace(day=2)
    store.update_split("t", 0.25)
    store.set_status("t", "stopped", stopped_at)
    (record,) = store.load_tests()
    assert (record.config.traffic_split, record.status, record.stopped_at) == (0.25, "stopped", stopped_at)
    store.set_status("t", "running", stopped_at)
    (record,) = store.load_tests()
    assert (record.status, record.stopped_at) == ("running", None)


@pytest.mark.parametrize(
    "operation",
    [
        lambda s: s.update_split("missing", 0.5),
        lambda s: s.set_status("missing", "stopped", STARTED),
        lambda s: s.append_results("missing", _batch(CONTROL, {"latency": [1.0]})),
        lambda s: s.load_results("missing"),
    ],
    ids=["update_split", "set_status", "append_results", "load_results"],
)
def test_an_unknown_test_is_not_found_and_the_error_names_the_stored_ones(
    store: ExperimentStore, operation: Callable[[ExperimentStore], object]
) -> None:
    store.save_test(_record("known"))
    with pytest.raises(NotFoundError, match="'missing' is not stored; stored: known"):
        operation(store)


def test_a_new_test_has_no_outcomes(store: ExperimentStore) -> None:
    store.save_test(_record())
    columns = store.load_results("t")
    assert len(columns) == 0 and columns.counts() == (0, 0) and dict(columns.metrics) == {}


def test_outcomes_load_in_recording_order_with_nan_where_a_metric_was_not_reported(store: ExperimentStore) -> None:
    store.save_test(_record())
    store.append_results("t", _batch(CONTROL, {"latency": [10.0, 12.0]}, split=0.1, at=100.0))
    store.append_results("t", _batch(CANDIDATE, {"latency": [8.0], "accuracy": [1.0]}, split=0.5, at=200.0))
    store.append_results("t", _batch(CONTROL, {"accuracy": [0.0]}, split=0.5, at=300.0))
    columns = store.load_results("t")
    assert columns.is_b.tolist() == [False, False, True, False]
    assert columns.counts() == (3, 1)
    assert columns.timestamps.tolist() == [100.0, 100.0, 200.0, 300.0]
    assert columns.splits.tolist() == [0.1, 0.1, 0.5, 0.5]
    assert list(columns.metrics) == ["latency", "accuracy"]
    np.testing.assert_array_equal(columns.metrics["latency"], [10.0, 12.0, 8.0, np.nan])
    np.testing.assert_array_equal(columns.metrics["accuracy"], [np.nan, np.nan, 1.0, 0.0])


def test_loaded_columns_are_read_only_snapshots(store: ExperimentStore) -> None:
    store.save_test(_record())
    store.append_results("t", _batch(CONTROL, {"latency": [1.0, 2.0]}))
    columns = store.load_results("t")
    store.append_results("t", _batch(CANDIDATE, {"latency": [3.0] * 100}))  # grows past the first buffer
    assert len(columns) == 2 and columns.metrics["latency"].tolist() == [1.0, 2.0]
    with pytest.raises(ValueError, match="read-only"):
        columns.metrics["latency"][0] = 5.0
    assert store.load_results("t").counts() == (2, 100)


def test_request_assignments_are_found_by_request_id(store: ExperimentStore) -> None:
    assignment = RequestAssignment(request_id="r1", test_name="t", arm=CANDIDATE, model_id="b")
    store.assign_request(assignment)
    assert store.find_request("r1") == assignment
    assert store.find_request("r2") is None


def test_a_request_id_keeps_its_first_arm(store: ExperimentStore) -> None:
    """Issue 18, item 10: a reused request id overwrote its assignment; now the first writer wins."""
    first = RequestAssignment(request_id="r1", test_name="t", arm=CANDIDATE, model_id="b")
    assert store.assign_request(first) is True
    assert store.assign_request(RequestAssignment(request_id="r1", test_name="t", arm=CONTROL, model_id="a")) is False
    assert store.find_request("r1") == first


def test_a_request_id_reports_one_outcome_and_a_second_stores_nothing(store: ExperimentStore) -> None:
    """Issue 18, item 10: the same request id reported 50 times counted 50 samples."""
    store.save_test(_record())
    store.append_results("t", _batch(CANDIDATE, {"engagement": [1.0]}), request_id="r1")
    with pytest.raises(AlreadyExistsError, match="'r1' was already recorded"):
        store.append_results("t", _batch(CANDIDATE, {"engagement": [0.0]}), request_id="r1")
    store.append_results("t", _batch(CANDIDATE, {"latency": [3.0]}))  # server-measured rows carry no id
    store.append_results("t", _batch(CANDIDATE, {"latency": [4.0]}))
    assert store.load_results("t").counts() == (0, 3)
    assert store.load_results("t").metrics["engagement"].tolist()[0] == 1.0


def test_concurrent_reports_for_one_request_id_count_once(store: ExperimentStore) -> None:
    """Issue 18, item 10: the check and the append are one atomic step (a unique index in SQLite)."""
    store.save_test(_record())
    refused: list[AlreadyExistsError] = []
    start = threading.Barrier(8)

    def report() -> None:
        start.wait()
        try:
            store.append_results("t", _batch(CONTROL, {"engagement": [1.0]}), request_id="same")
        except AlreadyExistsError as exc:
            refused.append(exc)

    threads = [threading.Thread(target=report) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert (len(refused), store.load_results("t").counts()) == (7, (1, 0))


def test_rollout_states_round_trip_and_a_save_replaces_the_previous_state(store: ExperimentStore) -> None:
    assert store.load_rollouts() == {}
    store.save_rollout("one", '{"step_index": 0}')
    store.save_rollout("two", '{"step_index": 3}')
    store.save_rollout("one", '{"step_index": 1}')
    assert store.load_rollouts() == {"one": '{"step_index": 1}', "two": '{"step_index": 3}'}


def test_concurrent_writers_lose_no_outcome_and_no_assignment(store: ExperimentStore) -> None:
    store.save_test(_record())

    def write(worker: int) -> None:
        for i in range(25):
            arm = CANDIDATE if i % 2 else CONTROL
            store.append_results("t", _batch(arm, {"latency": [float(i)]}))
            store.assign_request(RequestAssignment(request_id=f"{worker}-{i}", test_name="t", arm=arm, model_id="a"))

    threads = [threading.Thread(target=write, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert store.load_results("t").counts() == (4 * 13, 4 * 12)
    assert all(store.find_request(f"{w}-{i}") is not None for w in range(4) for i in range(25))


def test_a_second_sqlite_store_on_the_same_file_sees_everything(tmp_path: Path) -> None:
    first = SQLiteExperimentStore(tmp_path / "registry.db")
    first.save_test(_record())
    first.append_results("t", _batch(CANDIDATE, {"latency": [1.0]}))
    first.assign_request(RequestAssignment(request_id="r1", test_name="t", arm=CANDIDATE, model_id="b"))
    first.save_rollout("t", "{}")
    second = SQLiteExperimentStore(tmp_path / "registry.db")
    try:
        assert [r.config.test_name for r in second.load_tests()] == ["t"]
        assert second.load_results("t").counts() == (0, 1)
        assert second.find_request("r1") == first.find_request("r1")
        assert second.load_rollouts() == {"t": "{}"}
    finally:
        first.close()
        second.close()
