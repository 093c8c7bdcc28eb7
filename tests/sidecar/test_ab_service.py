"""A/B experiments inside the real sidecar: routing, outcomes, ramps, promotion and automatic rollback."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest

from rag_factory.hooks import RolloutEvent, hookimpl
from rag_factory.models.embedding import ModelRegistry
from rag_factory_contract.v1 import ab_pb2, ab_pb2_grpc, common_pb2, embedding_pb2, embedding_pb2_grpc
from tests.conftest import register_minilm_onnx

pytestmark = pytest.mark.slow

# The candidate is a second fp32 registration of the control's graph, as fast as the control on any CPU.
# (The int8 registration is not: on CPUs without VNNI its int8 kernels are slower than fp32, and the
# latency guardrail rightly rolls it back. test_a_slow_candidate_... exercises that guardrail.)
CANDIDATE = "minilm-onnx-next"
FAST_PLAN = ab_pb2.RampPlan(steps=[0.5, 1.0], min_samples_per_step=5, min_step_duration_s=0.0, max_error_rate=0.05)


class Stubs:
    def __init__(self, address: str) -> None:
        self.channel = grpc.insecure_channel(address)
        self.ab = ab_pb2_grpc.ABTestServiceStub(self.channel)
        self.embed = embedding_pb2_grpc.EmbeddingServiceStub(self.channel)

    def call(
        self,
        key: str,
        model: str = "minilm@production",
        text: str = "tumour suppressor genes",
        *,
        allow_fallback: bool = False,
    ) -> embedding_pb2.EmbedResponse:
        request = embedding_pb2.EmbedRequest(texts=[text], model=model, routing_key=key, allow_fallback=allow_fallback)
        return self.embed.Embed(request, timeout=30)


def _start(
    stubs: Stubs,
    candidate: str = CANDIDATE,
    plan: ab_pb2.RampPlan = FAST_PLAN,
    minimum_samples: int = 5,
    **extra: object,
) -> ab_pb2.Experiment:
    request = ab_pb2.StartExperimentRequest(
        name="int8-canary",
        model_name="minilm",
        candidate=candidate,
        plan=plan,
        minimum_samples=minimum_samples,
        **extra,
    )
    return stubs.ab.StartExperiment(request, timeout=10).experiment


def _wait_for(predicate: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.1)


@pytest.fixture
def ab_sidecar(private_registry_path: Path, sidecar_factory: Callable[..., object], onnx_export_dir: Path) -> Stubs:
    register_minilm_onnx(private_registry_path, CANDIDATE, "1.2.0", onnx_export_dir, base_model="minilm-onnx")
    # The ticker runs every 0.2 s here, so ramps and rollbacks happen during the test.
    sidecar = sidecar_factory(
        private_registry_path,
        models={
            "embedding": {
                "default_model_id": "minilm-onnx",
                "registry_path": str(private_registry_path),
                "ab_testing": {"tick_interval_s": 0.2},
            }
        },
    )
    return Stubs(sidecar.address)  # type: ignore[attr-defined]


def test_requests_for_the_alias_are_split_by_routing_key_and_stamped(ab_sidecar: Stubs) -> None:
    experiment = _start(ab_sidecar, plan=ab_pb2.RampPlan(steps=[0.5, 1.0], min_samples_per_step=10_000))
    assert (experiment.model_a_id, experiment.model_b_id, experiment.traffic_split) == (
        "minilm-onnx",
        CANDIDATE,
        0.5,
    )
    served = {key: ab_sidecar.call(key).served_by for key in (f"user-{i}" for i in range(40))}
    variants = {s.variant for s in served.values()}
    assert variants == {common_pb2.VARIANT_CONTROL, common_pb2.VARIANT_CANDIDATE}
    for s in served.values():
        expected = CANDIDATE if s.variant == common_pb2.VARIANT_CANDIDATE else "minilm-onnx"
        assert s.model_id == expected and s.experiment == "int8-canary"
    again = {key: ab_sidecar.call(key).served_by.variant for key in served}
    assert again == {key: s.variant for key, s in served.items()}  # sticky per key
    pinned = ab_sidecar.call("user-1", model="minilm@1.0.0").served_by  # a version is never routed
    assert pinned.variant == common_pb2.VARIANT_UNSPECIFIED and pinned.model_id == "minilm-onnx"


def test_outcomes_are_recorded_for_the_arm_that_served_the_request(ab_sidecar: Stubs) -> None:
    _start(ab_sidecar, plan=ab_pb2.RampPlan(steps=[0.5, 1.0], min_samples_per_step=10_000), minimum_samples=1000)
    for i in range(16):
        response = ab_sidecar.call(f"user-{i}")
        recorded = ab_sidecar.ab.RecordOutcome(
            ab_pb2.RecordOutcomeRequest(request_id=response.request_id, clicked_rank=i % 4, metrics={"accuracy": 1.0}),
            timeout=10,
        )
        assert recorded.experiment == "int8-canary" and recorded.model_id == response.served_by.model_id
    analysis = ab_sidecar.ab.AnalyzeExperiment(ab_pb2.AnalyzeExperimentRequest(name="int8-canary"), timeout=30)
    assert {"engagement", "ctr@5", "mrr_clicked", "accuracy", "latency_ms"} <= {m.name for m in analysis.metrics}
    assert analysis.verdict == "not_enough_data" and analysis.winner == "no_difference"


@pytest.mark.parametrize(
    ("request_fields", "code", "fragment"),
    [
        ({"request_id": "never-served", "clicked_rank": 1}, grpc.StatusCode.NOT_FOUND, "was not served"),
        ({"metrics": {"accuracy": float("nan")}}, grpc.StatusCode.INVALID_ARGUMENT, "finite"),
    ],
    ids=["unknown-request-id", "non-finite-metric"],
)
def test_bad_outcomes_are_refused_and_nothing_is_recorded(
    ab_sidecar: Stubs, request_fields: dict[str, object], code: grpc.StatusCode, fragment: str
) -> None:
    _start(ab_sidecar, plan=ab_pb2.RampPlan(steps=[0.5, 1.0], min_samples_per_step=10_000))
    served = ab_sidecar.call("someone")
    before = ab_sidecar.ab.GetExperiment(ab_pb2.GetExperimentRequest(name="int8-canary"), timeout=10).experiment
    fields = {"request_id": served.request_id, **request_fields}
    with pytest.raises(grpc.RpcError) as caught:
        ab_sidecar.ab.RecordOutcome(ab_pb2.RecordOutcomeRequest(**fields), timeout=10)  # type: ignore[arg-type]
    assert caught.value.code() == code and fragment in caught.value.details()
    after = ab_sidecar.ab.GetExperiment(ab_pb2.GetExperimentRequest(name="int8-canary"), timeout=10).experiment
    assert (after.samples_a, after.samples_b) == (before.samples_a, before.samples_b)


def test_an_outcome_arriving_after_the_experiment_ended_is_refused_as_late(ab_sidecar: Stubs) -> None:
    _start(ab_sidecar, plan=ab_pb2.RampPlan(steps=[0.5, 1.0], min_samples_per_step=10_000))
    served = ab_sidecar.call("someone")
    assert served.served_by.experiment == "int8-canary"
    ab_sidecar.ab.StopExperiment(ab_pb2.StopExperimentRequest(name="int8-canary"), timeout=10)
    with pytest.raises(grpc.RpcError) as caught:
        ab_sidecar.ab.RecordOutcome(
            ab_pb2.RecordOutcomeRequest(request_id=served.request_id, clicked_rank=1), timeout=10
        )
    # Not NOT_FOUND: the request was routed by the experiment, which has since ended.
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "has ended" in caught.value.details() and "int8-canary" in caught.value.details()


@pytest.mark.parametrize(
    ("candidate", "extra", "code", "fragment"),
    [
        ("ghost@9.9.9", {}, grpc.StatusCode.NOT_FOUND, "not registered"),
        ("minilm-old", {}, grpc.StatusCode.FAILED_PRECONDITION, "deprecated"),
        ("minilm-onnx-int8", {"plan": ab_pb2.RampPlan(steps=[0.5, 1.5])}, grpc.StatusCode.INVALID_ARGUMENT, "steps"),
    ],
    ids=["missing-model", "deprecated-model", "split-outside-0-1"],
)
def test_invalid_experiments_are_refused(
    ab_sidecar: Stubs, candidate: str, extra: dict[str, object], code: grpc.StatusCode, fragment: str
) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        _start(ab_sidecar, candidate=candidate, **extra)  # type: ignore[arg-type]
    assert caught.value.code() == code and fragment in caught.value.details()


def test_two_experiments_on_one_alias_and_bad_ramps_are_refused(ab_sidecar: Stubs) -> None:
    _start(ab_sidecar, plan=ab_pb2.RampPlan(steps=[0.1, 1.0], min_samples_per_step=10_000))
    with pytest.raises(grpc.RpcError) as caught:
        ab_sidecar.ab.StartExperiment(
            ab_pb2.StartExperimentRequest(name="second", model_name="minilm", candidate="minilm-onnx-int8"), timeout=10
        )
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "already running" in caught.value.details()
    with pytest.raises(grpc.RpcError) as caught:
        ab_sidecar.ab.RampExperiment(ab_pb2.RampExperimentRequest(name="int8-canary", traffic_split=1.7), timeout=10)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    ramped = ab_sidecar.ab.RampExperiment(ab_pb2.RampExperimentRequest(name="int8-canary"), timeout=10).experiment
    assert ramped.traffic_split == 1.0


def test_a_healthy_candidate_ramps_step_by_step_and_is_promoted(ab_sidecar: Stubs, private_registry_path: Path) -> None:
    _start(ab_sidecar)
    key = 0

    def status() -> int:
        return ab_sidecar.ab.GetExperiment(
            ab_pb2.GetExperimentRequest(name="int8-canary"), timeout=10
        ).experiment.status

    while status() == ab_pb2.EXPERIMENT_STATUS_RAMPING:
        ab_sidecar.call(f"user-{key}")
        key += 1
        assert key < 2000, "the rollout never completed"
    ended = ab_sidecar.ab.GetExperiment(ab_pb2.GetExperimentRequest(name="int8-canary"), timeout=10).experiment
    assert ended.status == ab_pb2.EXPERIMENT_STATUS_PROMOTED, ended.reason
    assert ab_sidecar.call("anyone").served_by.model_id == CANDIDATE  # the alias moved
    ab_sidecar.ab.RollbackExperiment(ab_pb2.RollbackExperimentRequest(name="int8-canary"), timeout=10)
    assert ModelRegistry(private_registry_path).get_alias("minilm", "production").model_id == "minilm-onnx"


def _start_a_broken_candidate(ab_sidecar: Stubs, private_registry_path: Path, tmp_path: Path) -> ModelRegistry:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model.onnx").write_bytes(b"not a graph")
    registry = ModelRegistry(private_registry_path)
    register_minilm_onnx(registry, "minilm-broken", "2.0.0", broken)
    _start(
        ab_sidecar,
        candidate="minilm-broken",
        plan=ab_pb2.RampPlan(steps=[0.5, 1.0], min_samples_per_step=10_000, max_error_rate=0.05),
    )
    return registry


def _assert_rolled_back_for_errors(ab_sidecar: Stubs, registry: ModelRegistry) -> None:
    def rolled_back() -> bool:
        experiment = ab_sidecar.ab.GetExperiment(ab_pb2.GetExperimentRequest(name="int8-canary"), timeout=10).experiment
        return experiment.status == ab_pb2.EXPERIMENT_STATUS_ROLLED_BACK

    _wait_for(rolled_back)
    experiment = ab_sidecar.ab.GetExperiment(ab_pb2.GetExperimentRequest(name="int8-canary"), timeout=10).experiment
    # Either rule may fire first: the error-rate limit or the (significance-tested) error guardrail.
    assert experiment.traffic_split == 0.0 and "error" in experiment.reason
    assert registry.get_alias("minilm", "production").model_id == "minilm-onnx"
    assert ab_sidecar.call("user-1").served_by.variant == common_pb2.VARIANT_UNSPECIFIED


def test_a_failing_candidate_is_rolled_back_automatically(
    ab_sidecar: Stubs, private_registry_path: Path, tmp_path: Path
) -> None:
    registry = _start_a_broken_candidate(ab_sidecar, private_registry_path, tmp_path)
    for i in range(80):
        response = ab_sidecar.call(f"user-{i}", allow_fallback=True)
        assert response.count == 1  # clients that allow a fallback never see the failure: the base model answers

    _assert_rolled_back_for_errors(ab_sidecar, registry)


def test_a_failing_candidate_fails_strict_requests_and_is_still_rolled_back(
    ab_sidecar: Stubs, private_registry_path: Path, tmp_path: Path
) -> None:
    registry = _start_a_broken_candidate(ab_sidecar, private_registry_path, tmp_path)
    refused: list[grpc.RpcError] = []
    for i in range(80):
        try:
            assert ab_sidecar.call(f"user-{i}").served_by.model_id == "minilm-onnx"  # the control arm
        except grpc.RpcError as exc:
            refused.append(exc)

    assert refused and {exc.code() for exc in refused} == {grpc.StatusCode.UNAVAILABLE}
    assert all("'minilm-broken'" in exc.details() and "'minilm-onnx'" in exc.details() for exc in refused)
    _assert_rolled_back_for_errors(ab_sidecar, registry)


class SlowCandidate:
    """A real preprocessing plugin that makes one model slow, to exercise the latency guardrail."""

    def __init__(self) -> None:
        self.rollouts: list[RolloutEvent] = []

    @hookimpl
    def rag_factory_preprocess_texts(self, texts: list[str], model_id: str) -> list[str] | None:
        if model_id == "minilm-onnx-int8":
            time.sleep(0.05)
        return None

    @hookimpl
    def rag_factory_on_rollout(self, event: RolloutEvent) -> None:
        self.rollouts.append(event)


def test_a_slow_candidate_is_rolled_back_by_the_latency_guardrail(
    private_registry_path: Path, model_cache_dir: Path
) -> None:
    from sidecar.server import build_server, build_services
    from sidecar.settings import SidecarSettings

    plugin = SlowCandidate()
    settings = SidecarSettings.model_validate(
        {
            "address": "127.0.0.1:0",
            "http_address": None,  # these tests use gRPC only; 8080 may be taken
            "load_entry_point_plugins": False,
            "models": {
                "embedding": {
                    "default_model_id": "minilm-onnx",
                    "registry_path": str(private_registry_path),
                    "cache_dir": str(model_cache_dir),
                    "ab_testing": {"tick_interval_s": 0.2},
                }
            },
        }
    )
    services = build_services(settings, plugins=(plugin,))
    server, port = build_server(settings, services)
    try:
        assert services.ready.wait(60)
        stubs = Stubs(f"127.0.0.1:{port}")
        _start(stubs, candidate="minilm-onnx-int8", plan=ab_pb2.RampPlan(steps=[0.5, 1.0], min_samples_per_step=10_000))
        for i in range(60):
            stubs.call(f"user-{i}")
        _wait_for(lambda: any(e.action == "rolled_back" for e in plugin.rollouts))
    finally:
        server.stop(None).wait()
        services.close()
    rollback = next(e for e in plugin.rollouts if e.action == "rolled_back")
    assert "latency_ms" in rollback.reason and rollback.traffic_split == 0.0
    assert [e.action for e in plugin.rollouts][0] == "started"
