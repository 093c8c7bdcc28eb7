"""A/B integrity in the real sidecar (issue 18, items 10 and 11, and the leftover of item 3).

Outcomes cannot be forged: one per request id (even when reports race), no server-measured metric
from a client, bounded request ids that cannot grow the database. Experiments end when an arm
breaks, and compare versions of their own model only. A plan stored with null by older code no
longer bricks the server.

One sidecar serves the module; each test runs its experiment on its own alias of ``minilm``.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest

from rag_factory.experiments.framework import ABTestingFramework
from rag_factory.experiments.rollout import RolloutPlan, RolloutState
from rag_factory.experiments.sqlite_store import SQLiteExperimentStore
from rag_factory.models.embedding import ModelRegistry
from rag_factory.models.embedding.models import ABTestConfig
from rag_factory.storage import database_path
from rag_factory_contract.v1 import ab_pb2, ab_pb2_grpc, common_pb2, embedding_pb2, embedding_pb2_grpc
from tests.conftest import RunningSidecar, register_minilm_onnx, start_sidecar

pytestmark = pytest.mark.slow

CANDIDATE = "minilm-onnx-next"  # healthy; shared by the tests that do not break their candidate
SLOW_PLAN = ab_pb2.RampPlan(steps=[0.5, 1.0], min_samples_per_step=10_000, min_step_duration_s=0.0)
TICKING = {"ab_testing": {"tick_interval_s": 0.2}}


class Client:
    """Stubs of the module's sidecar, plus its registry as an operator's CLI would open it."""

    def __init__(self, address: str, registry: ModelRegistry) -> None:
        self.channel = grpc.insecure_channel(address)
        self.ab = ab_pb2_grpc.ABTestServiceStub(self.channel)
        self.embed = embedding_pb2_grpc.EmbeddingServiceStub(self.channel)
        self.registry = registry

    def start(
        self, name: str, candidate: str = CANDIDATE, control: str = "minilm-onnx", **fields: object
    ) -> ab_pb2.Experiment:
        """Start ``name`` on the alias ``name`` of minilm, which is pointed at ``control`` here."""
        self.registry.set_alias("minilm", name, control)
        fields = {"plan": SLOW_PLAN, **fields}
        request = ab_pb2.StartExperimentRequest(
            name=name, model_name="minilm", alias=name, candidate=candidate, **fields
        )
        return self.ab.StartExperiment(request, timeout=60).experiment

    def call(self, alias: str, key: str, request_id: str = "") -> embedding_pb2.EmbedResponse:
        request = embedding_pb2.EmbedRequest(
            texts=["tumour suppressor genes"], model=f"minilm@{alias}", routing_key=key, request_id=request_id
        )
        return self.embed.Embed(request, timeout=30)

    def key_for(self, alias: str, variant: int) -> str:
        """A routing key the experiment on ``alias`` sends to ``variant`` (costs a few requests)."""
        for i in range(200):
            if self.call(alias, f"user-{i}").served_by.variant == variant:
                return f"user-{i}"
        raise AssertionError("no key reached the variant")

    def experiment(self, name: str) -> ab_pb2.Experiment:
        return self.ab.GetExperiment(ab_pb2.GetExperimentRequest(name=name), timeout=10).experiment

    def report(self, request_id: str, **fields: object) -> ab_pb2.RecordOutcomeResponse:
        request = ab_pb2.RecordOutcomeRequest(request_id=request_id, **fields)  # type: ignore[arg-type]
        return self.ab.RecordOutcome(request, timeout=10)

    def refused(self, call: Callable[[], object]) -> grpc.RpcError:
        with pytest.raises(grpc.RpcError) as caught:
            call()
        return caught.value


def _wait_for(predicate: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def registry_path(sidecar_registry_path: Path, onnx_export_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session registry, copied, with a healthy candidate, two to break, and a model of another name."""
    path = tmp_path_factory.mktemp("ab-integrity") / "registry"
    shutil.copytree(sidecar_registry_path, path)
    registry = ModelRegistry(path)
    for model_id, version in ((CANDIDATE, "1.2.0"), ("minilm-doomed-1", "1.4.0"), ("minilm-doomed-2", "1.5.0")):
        register_minilm_onnx(registry, model_id, version, onnx_export_dir)
    register_minilm_onnx(registry, "other-onnx", "1.0.0", onnx_export_dir, model_name="other")
    registry.close()
    return path


@pytest.fixture(scope="module")
def sidecar(registry_path: Path, model_cache_dir: Path) -> Iterator[RunningSidecar]:
    embedding = {"default_model_id": "minilm-onnx", "registry_path": str(registry_path), **TICKING}
    running = start_sidecar(registry_path, model_cache_dir, models={"embedding": embedding})
    yield running
    running.server.stop(grace=2).wait()
    running.services.close()


@pytest.fixture
def client(sidecar: RunningSidecar, registry_path: Path) -> Iterator[Client]:
    registry = ModelRegistry(registry_path)
    made = Client(sidecar.address, registry)
    yield made
    made.channel.close()
    registry.close()


# -- item 10: outcomes cannot be forged ----------------------------------------------------------------


def test_an_outcome_counts_once_per_request_id_even_when_reports_race(client: Client) -> None:
    """The same request id 50 times counted 50 samples; now ALREADY_EXISTS, and a race counts one."""
    client.start("once")
    first, raced = client.call("once", "user-1"), client.call("once", "user-2")
    client.report(first.request_id, clicked_rank=1)
    before = client.experiment("once")

    again = client.refused(lambda: client.report(first.request_id, clicked_rank=1))
    codes: list[grpc.StatusCode] = []
    barrier = threading.Barrier(8)

    def report() -> None:
        barrier.wait()
        try:
            client.report(raced.request_id, clicked_rank=2)
            codes.append(grpc.StatusCode.OK)
        except grpc.RpcError as exc:
            codes.append(exc.code())

    threads = [threading.Thread(target=report) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert again.code() == grpc.StatusCode.ALREADY_EXISTS and "counts once" in again.details()
    assert sorted(codes, key=str) == sorted([grpc.StatusCode.OK] + [grpc.StatusCode.ALREADY_EXISTS] * 7, key=str)
    after = client.experiment("once")
    assert after.samples_a + after.samples_b == before.samples_a + before.samples_b + 1


@pytest.mark.parametrize("metric", ["error", "latency_ms"])
def test_a_client_cannot_send_a_metric_the_server_measures(client: Client, metric: str) -> None:
    """A client-sent {"error": 1} rolled a healthy experiment back (the error-rate rule reads it)."""
    name = f"forged-{metric.replace('_', '-')}"
    client.start(name, plan=ab_pb2.RampPlan(steps=[0.5, 1.0], min_samples_per_step=10_000, max_error_rate=0.01))
    served = [client.call(name, f"user-{i}") for i in range(30)]

    refused = [client.refused(lambda r=r: client.report(r.request_id, metrics={metric: 1.0})) for r in served]

    assert {e.code() for e in refused} == {grpc.StatusCode.INVALID_ARGUMENT}
    assert f"metric {metric!r} is measured by the server" in refused[0].details()
    time.sleep(0.6)  # three ticks
    assert client.experiment(name).status == ab_pb2.EXPERIMENT_STATUS_RAMPING


@pytest.mark.parametrize(
    ("name", "metrics", "fragment"),
    [
        ("huge-value", {"accuracy": 1e308}, "within ±1e+09"),
        ("minus-infinity", {"accuracy": float("-inf")}, "finite"),
        ("long-name", {"x" * 20_000: 1.0}, "not valid"),
    ],
    ids=["huge-value", "minus-infinity", "long-name"],
)
def test_client_metrics_are_finite_bounded_and_short(
    client: Client, name: str, metrics: dict[str, float], fragment: str
) -> None:
    client.start(name)
    served = client.call(name, "user-1")

    refused = client.refused(lambda: client.report(served.request_id, metrics=metrics))

    assert refused.code() == grpc.StatusCode.INVALID_ARGUMENT and fragment in refused.details()
    assert len(refused.details()) < 300


def test_a_reused_request_id_keeps_the_arm_that_served_it_first(client: Client) -> None:
    """A reused request id overwrote its assignment, moving an outcome to the other arm."""
    client.start("reused")
    control = client.key_for("reused", common_pb2.VARIANT_CONTROL)
    candidate = client.key_for("reused", common_pb2.VARIANT_CANDIDATE)
    client.call("reused", control, request_id="my-request")
    client.call("reused", candidate, request_id="my-request")

    recorded = client.report("my-request", clicked_rank=1)

    assert recorded.model_id == "minilm-onnx"


def test_megabyte_request_ids_do_not_grow_the_database(client: Client, registry_path: Path) -> None:
    """1 MB request ids grew the database 30-fold; such an id is now not stored, and cannot be reported."""
    client.start("huge-ids")
    huge = "r" * 1_000_000

    def size() -> int:
        return sum(p.stat().st_size for p in registry_path.glob("registry.db*"))

    before = size()
    for i in range(5):
        try:
            client.call("huge-ids", f"user-{i}", request_id=f"{i}{huge}")
        except grpc.RpcError as exc:  # refusing the id at the edge is as good
            assert exc.code() == grpc.StatusCode.INVALID_ARGUMENT
    refused = client.refused(lambda: client.report(f"0{huge}", clicked_rank=1))

    assert size() - before < 1_000_000
    assert refused.code() == grpc.StatusCode.INVALID_ARGUMENT and len(refused.details()) < 300


# -- item 11: arms of the experiment's model, and experiments that end when an arm breaks ----------------


@pytest.mark.parametrize(
    ("name", "fields", "fragment"),
    [
        ("other-model", {"candidate": "other-onnx"}, "'other-onnx' is a version of 'other', not of 'minilm'"),
        ("samples", {"minimum_samples": 2**32 - 1}, "minimum_samples"),
    ],
    ids=["candidate-of-another-model", "minimum-samples-out-of-range"],
)
def test_experiments_that_could_never_finish_are_refused(
    client: Client, name: str, fields: dict[str, object], fragment: str
) -> None:
    """A candidate of another name ramped, then its promotion failed on every tick."""
    refused = client.refused(lambda: client.start(name, **fields))  # type: ignore[arg-type]

    assert refused.code() == grpc.StatusCode.INVALID_ARGUMENT and fragment in refused.details()
    names = [e.name for e in client.ab.ListExperiments(ab_pb2.ListExperimentsRequest(), timeout=10).experiments]
    assert name not in names


def _ended(client: Client, name: str, status: int) -> ab_pb2.Experiment:
    _wait_for(lambda: client.experiment(name).status == status)
    return client.experiment(name)


@pytest.mark.parametrize(
    ("candidate", "break_it", "fragment"),
    [
        ("minilm-doomed-1", lambda r: r.deprecate("minilm-doomed-1", reason="recall dropped"), "was deprecated"),
        ("minilm-doomed-2", lambda r: r.delete_model("minilm-doomed-2"), "was deleted"),
    ],
    ids=["deprecated", "deleted"],
)
def test_a_candidate_deprecated_or_deleted_during_a_test_is_rolled_back(
    client: Client, candidate: str, break_it: Callable[[ModelRegistry], object], fragment: str
) -> None:
    """The experiment stayed RAMPING forever while the users routed to the candidate got errors."""
    name = f"broken-{candidate}"
    client.start(name, candidate=candidate)
    to_candidate = client.key_for(name, common_pb2.VARIANT_CANDIDATE)

    break_it(client.registry)

    ended = _ended(client, name, ab_pb2.EXPERIMENT_STATUS_ROLLED_BACK)
    assert f"candidate {candidate!r} {fragment}" in ended.reason and ended.traffic_split == 0.0
    served = client.call(name, to_candidate).served_by  # the user the candidate served is served again
    assert (served.model_id, served.variant) == ("minilm-onnx", common_pb2.VARIANT_UNSPECIFIED)


def test_a_control_deprecated_during_a_test_stops_it_and_leaves_the_alias(client: Client) -> None:
    """The experiment whose control broke ramped on; now it stops, and the alias is the operator's to move."""
    client.start("ctl", control="minilm-onnx-int8")  # not the default model, which the other tests use

    client.registry.deprecate("minilm-onnx-int8", reason="replaced")

    try:
        ended = _ended(client, "ctl", ab_pb2.EXPERIMENT_STATUS_STOPPED)
    finally:
        client.registry.undeprecate("minilm-onnx-int8")
    assert "control 'minilm-onnx-int8' was deprecated" in ended.reason and ended.traffic_split == 0.0
    assert client.registry.get_alias("minilm", "ctl").model_id == "minilm-onnx-int8"


# -- item 3, leftover: a plan stored with null by older code ----------------------------------------------


def test_a_registry_with_a_plan_stored_as_null_still_serves_and_the_experiment_is_rolled_back(
    private_registry_path: Path, model_cache_dir: Path, onnx_export_dir: Path
) -> None:
    """Older code stored an infinite step as null: every A/B call answered INTERNAL and serve would not start."""
    legacy = private_registry_path
    register_minilm_onnx(legacy, CANDIDATE, "1.2.0", onnx_export_dir)
    store = SQLiteExperimentStore(database_path(legacy))
    ABTestingFramework(store=store).start_test(
        ABTestConfig(test_name="legacy", model_a_id="minilm-onnx", model_b_id=CANDIDATE, traffic_split=0.5)
    )
    state = RolloutState(
        test_name="legacy", model_name="minilm", alias="production", model_a_id="minilm-onnx",
        model_b_id=CANDIDATE, plan=RolloutPlan(steps=[0.5, 1.0]), step_started_at=time.time(),
    )  # fmt: skip
    store.save_rollout(
        "legacy", state.model_dump_json().replace('"min_step_duration_s":300.0', '"min_step_duration_s":null')
    )
    store.close()

    embedding = {"default_model_id": "minilm-onnx", "registry_path": str(legacy), **TICKING}
    sidecar = start_sidecar(legacy, model_cache_dir, models={"embedding": embedding})
    try:
        client = Client(sidecar.address, ModelRegistry(legacy))
        listed = client.ab.ListExperiments(ab_pb2.ListExperimentsRequest(), timeout=10).experiments
        served = client.call("production", "user-1").served_by
        client.registry.close()
    finally:
        sidecar.server.stop(grace=2).wait()
        sidecar.services.close()

    (experiment,) = listed
    assert experiment.status == ab_pb2.EXPERIMENT_STATUS_ROLLED_BACK and "min_step_duration_s" in experiment.reason
    assert (served.model_id, served.variant) == ("minilm-onnx", common_pb2.VARIANT_UNSPECIFIED)
