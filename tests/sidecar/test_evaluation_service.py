"""EvaluationService on the real sidecar: streamed progress, cached re-runs, paired comparisons, bad input."""

from __future__ import annotations

from collections.abc import Callable

import grpc
import pytest

from rag_factory.data import bundled_dataset
from rag_factory_contract.v1 import evaluation_pb2, evaluation_pb2_grpc

pytestmark = pytest.mark.slow
DATA = str(bundled_dataset("scifact_mini"))


def _evaluate(channel: grpc.Channel, model: str, **fields: object) -> list[evaluation_pb2.EvaluateResponse]:
    stub = evaluation_pb2_grpc.EvaluationServiceStub(channel)
    request = evaluation_pb2.EvaluateRequest(**{"model": model, "data_dir": DATA, **fields})  # type: ignore[arg-type]
    return list(stub.Evaluate(request, timeout=300))


def test_evaluate_streams_progress_then_the_metrics(channel: grpc.Channel) -> None:
    responses = _evaluate(channel, "minilm@1.1.0")
    assert all(r.HasField("progress") for r in responses[:-1]) and len(responses) > 1
    result = responses[-1].result
    assert (result.model_id, result.backend, result.precision) == ("minilm-onnx-int8", "onnx", "int8")
    assert (result.dataset, result.split, result.n_queries) == ("scifact_mini", "test", 100)
    assert 0.5 < result.metrics["ndcg@10"] < 1.0
    again = _evaluate(channel, "minilm@1.1.0")[-1].result
    assert again.corpus_cache_hit and again.metrics["ndcg@10"] == pytest.approx(result.metrics["ndcg@10"])


def test_compare_retrieval_reports_paired_tests(channel: grpc.Channel) -> None:
    stub = evaluation_pb2_grpc.EvaluationServiceStub(channel)
    response = stub.CompareRetrieval(
        evaluation_pb2.CompareRetrievalRequest(model_a="minilm-onnx", model_b="minilm-onnx-int8", data_dir=DATA),
        timeout=300,
    )
    ndcg = next(m for m in response.metrics if m.metric == "ndcg@10")
    assert ndcg.ci_low <= ndcg.mean_b - ndcg.mean_a <= ndcg.ci_high
    assert 0.0 <= ndcg.t_pvalue <= 1.0 and ndcg.wins + ndcg.losses <= 100


@pytest.mark.parametrize(
    ("model", "fields", "code"),
    [
        ("minilm-onnx", {"split": "dev"}, grpc.StatusCode.INVALID_ARGUMENT),
        ("ghost@1.0.0", {}, grpc.StatusCode.NOT_FOUND),
        # A split names a file: a long one answered INTERNAL (file name too long), and "../x" climbed out
        # of the dataset's qrels folder (found by the fuzz test).
        ("minilm-onnx", {"split": "x" * 300}, grpc.StatusCode.INVALID_ARGUMENT),
        ("minilm-onnx", {"split": "../../corpus"}, grpc.StatusCode.INVALID_ARGUMENT),
    ],
    ids=["split-without-qrels", "unknown-model", "split-too-long", "split-with-a-path"],
)
def test_bad_evaluations_get_clear_errors(
    channel: grpc.Channel, model: str, fields: dict[str, object], code: grpc.StatusCode
) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        _evaluate(channel, model, **fields)
    assert caught.value.code() == code


def _refusal(call: Callable[[], object]) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return caught.value.code(), caught.value.details()


def _evaluation_refusal(
    channel: grpc.Channel, model: str = "minilm-onnx", **fields: str
) -> tuple[grpc.StatusCode, str]:
    return _refusal(lambda: _evaluate(channel, model, **fields))


@pytest.mark.parametrize(
    ("field", "existing", "missing"),
    [
        ("data_dir", "/etc", "/no/such/dataset"),
        ("model", "/etc", "/no/such/model"),
        ("model", "../../../../../../etc", "../../../../../../no/such/model"),
    ],
    ids=["dataset", "model-path", "relative-model-path"],
)
def test_evaluate_reads_no_folder_outside_the_roots_and_does_not_say_which_exist(
    channel: grpc.Channel, field: str, existing: str, missing: str
) -> None:
    """Issue 18, item 8: Evaluate loaded any dataset or model folder named, and its errors told which existed."""
    answers = [_evaluation_refusal(channel, **{field: path}) for path in (existing, missing)]

    assert answers[0] == answers[1]
    assert answers[0][0] == grpc.StatusCode.PERMISSION_DENIED and field in answers[0][1]


@pytest.mark.parametrize("field", ["data_dir", "model"])
def test_evaluate_without_a_dataset_or_model_is_invalid(channel: grpc.Channel, field: str) -> None:
    """An empty path used to mean the server's working folder."""
    code, details = _evaluation_refusal(channel, **{field: ""})

    assert code == grpc.StatusCode.INVALID_ARGUMENT and f"{field} is required" in details


def test_compare_retrieval_checks_both_models(channel: grpc.Channel) -> None:
    stub = evaluation_pb2_grpc.EvaluationServiceStub(channel)
    request = evaluation_pb2.CompareRetrievalRequest(model_a="minilm-onnx", model_b="/etc", data_dir=DATA)

    code, details = _refusal(lambda: stub.CompareRetrieval(request, timeout=60))

    assert code == grpc.StatusCode.PERMISSION_DENIED and "model_b" in details
