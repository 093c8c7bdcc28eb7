"""Validation at the edge (issue 18, items 12 to 14): every client mistake answers INVALID_ARGUMENT or its
specific code, never INTERNAL, UNKNOWN or RESOURCE_EXHAUSTED, and nothing malformed is stored.

Each test is a regression test of a reproduced defect; its docstring names the issue item. One real
sidecar serves the whole module, on a private copy of the session registry.
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import struct_pb2, timestamp_pb2
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from rag_factory_contract.v1 import embedding_pb2, embedding_pb2_grpc, model_pb2, model_pb2_grpc, registry_pb2_grpc
from rag_factory_contract.v1 import registry_pb2 as pb
from tests.conftest import RunningSidecar, start_sidecar

pytestmark = pytest.mark.slow

LONG = "x" * 20_000
# What one error may send (sidecar.errors.MAX_MESSAGE_BYTES), with room for the "…".
MAX_DETAILS_BYTES = 1024


@pytest.fixture(scope="module")
def sidecar(
    sidecar_registry_path: Path, model_cache_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningSidecar]:
    registry = tmp_path_factory.mktemp("edge") / "registry"
    shutil.copytree(sidecar_registry_path, registry)
    running = start_sidecar(registry, model_cache_dir)
    yield running
    running.server.stop(grace=2).wait()
    running.services.close()


@pytest.fixture
def channel(sidecar: RunningSidecar) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(sidecar.address) as chan:
        yield chan


@pytest.fixture
def registry(channel: grpc.Channel) -> registry_pb2_grpc.RegistryServiceStub:
    return registry_pb2_grpc.RegistryServiceStub(channel)


def _refusal(call: Any, request: Any) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call(request, timeout=30)
    error = caught.value
    assert len(error.details().encode()) <= MAX_DETAILS_BYTES, error.details()[:200]
    return error


def _metadata(model_id: str, **fields: Any) -> pb.ModelMetadata:
    values: dict[str, Any] = {
        "model_id": model_id, "model_name": "edge", "version": "1.0.0", "format": pb.MODEL_FORMAT_ONNX,
        "embedding_dim": 384, "max_seq_length": 256, **fields,
    }  # fmt: skip
    return pb.ModelMetadata(**values)


def _struct(values: dict[str, Any]) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    message.update(values)
    return message


def _not_stored(registry: registry_pb2_grpc.RegistryServiceStub, model_id: str) -> bool:
    listed = registry.ListModels(pb.ListModelsRequest(name="edge"), timeout=10).records
    return model_id not in {record.metadata.model_id for record in listed}


# -- item 13: undecodable requests, non-finite numbers, unknown enum values, long inputs -------------


def _with_bad_utf8(message: Any, placeholder: str) -> bytes:
    data: bytes = message.SerializeToString()
    return data.replace(placeholder.encode(), b"\xff" * len(placeholder))


def test_invalid_utf8_or_a_cut_message_answers_invalid_argument(channel: grpc.Channel) -> None:
    """Item 13: protobuf refuses a string that is not UTF-8 (or a message cut short), and gRPC answered
    INTERNAL "Exception deserializing request!" as if the server were broken."""
    get_model = channel.unary_unary("/rag_factory.v1.RegistryService/GetModel")
    embed = channel.unary_unary("/rag_factory.v1.EmbeddingService/Embed")
    stream = channel.stream_stream("/rag_factory.v1.EmbeddingService/EmbedStream")
    bad_text = embedding_pb2.EmbedRequest(texts=["placeholder"])

    errors = []
    for call, payload in (
        (get_model, _with_bad_utf8(pb.GetModelRequest(model="placeholder"), "placeholder")),
        (embed, _with_bad_utf8(bad_text, "placeholder")),
        (embed, bad_text.SerializeToString()[:-3]),
    ):
        with pytest.raises(grpc.RpcError) as caught:
            call(payload, timeout=10)
        errors.append(caught.value)
    with pytest.raises(grpc.RpcError) as caught:
        list(
            stream(
                iter([_with_bad_utf8(embedding_pb2.EmbedStreamRequest(request=bad_text), "placeholder")]), timeout=10
            )
        )
    errors.append(caught.value)

    assert [error.code() for error in errors] == [grpc.StatusCode.INVALID_ARGUMENT] * 4
    assert all("could not be decoded" in error.details() for error in errors)


@pytest.mark.parametrize(
    ("load_config", "named"),
    [
        ({"batch_size": math.nan}, "load_config.batch_size"),
        ({"max_seq_length": math.inf}, "load_config.max_seq_length"),
        ({"additional_config": {"onnx_threads": -math.inf}}, "load_config.additional_config.onnx_threads"),
    ],
    ids=["nan", "infinity", "nested-minus-infinity"],
)
def test_non_finite_load_config_numbers_are_refused_naming_where(
    registry: registry_pb2_grpc.RegistryServiceStub, load_config: dict[str, Any], named: str
) -> None:
    """Item 13: NaN or infinity in load_config answered INTERNAL (protobuf's JSON conversion raised)."""
    request = pb.RegisterModelRequest(metadata=_metadata("edge-nan"), load_config=_struct(load_config))

    error = _refusal(registry.RegisterModel, request)

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and named in error.details()
    assert _not_stored(registry, "edge-nan")


def test_unknown_enum_values_are_refused(
    channel: grpc.Channel, registry: registry_pb2_grpc.RegistryServiceStub
) -> None:
    """Item 13: an enum value the contract does not define (a client built from another proto) is a mistake
    to name, not a filter to ignore: ListModels(format=99) listed every model."""
    embed = embedding_pb2_grpc.EmbeddingServiceStub(channel).Embed

    listed = _refusal(registry.ListModels, pb.ListModelsRequest(format=99))  # type: ignore[arg-type]
    registered = _refusal(registry.RegisterModel, pb.RegisterModelRequest(metadata=_metadata("edge-enum", format=99)))
    embedded = _refusal(embed, embedding_pb2.EmbedRequest(texts=["a"], encoding=99))  # type: ignore[arg-type]

    assert [e.code() for e in (listed, registered, embedded)] == [grpc.StatusCode.INVALID_ARGUMENT] * 3
    assert "99" in listed.details() and "99" in registered.details() and "99" in embedded.details()


def test_a_created_at_outside_the_calendar_is_refused(registry: registry_pb2_grpc.RegistryServiceStub) -> None:
    """Item 13: a Timestamp past year 9999 answered INTERNAL (the datetime conversion overflowed)."""
    metadata = _metadata("edge-time", created_at=timestamp_pb2.Timestamp(seconds=2**62))

    error = _refusal(registry.RegisterModel, pb.RegisterModelRequest(metadata=metadata))

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "created_at" in error.details()


def _long_input_calls(channel: grpc.Channel) -> dict[str, tuple[Any, Any, grpc.StatusCode]]:
    registry = registry_pb2_grpc.RegistryServiceStub(channel)
    models = model_pb2_grpc.ModelServiceStub(channel)
    embed = embedding_pb2_grpc.EmbeddingServiceStub(channel).Embed
    invalid, not_found = grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND
    return {
        "get-model": (registry.GetModel, pb.GetModelRequest(model=LONG), not_found),
        "model-info": (models.GetModelInfo, model_pb2.GetModelInfoRequest(model=LONG), not_found),
        "compare": (registry.CompareModels, pb.CompareModelsRequest(model_a=LONG, model_b=LONG), not_found),
        "set-alias-target": (
            registry.SetAlias, pb.SetAliasRequest(model_name="minilm", alias="edge", target=LONG), not_found,
        ),
        "set-alias-name": (
            registry.SetAlias, pb.SetAliasRequest(model_name="minilm", alias=LONG, target="1.0.0"), invalid,
        ),
        "rollback": (registry.RollbackAlias, pb.RollbackAliasRequest(model_name=LONG, alias=LONG), not_found),
        "register-id": (registry.RegisterModel, pb.RegisterModelRequest(metadata=_metadata(LONG)), invalid),
        "register-version": (
            registry.RegisterModel, pb.RegisterModelRequest(metadata=_metadata("edge-v", version=f"1.0.0-{LONG}")),
            invalid,
        ),
        "register-option": (
            registry.RegisterModel,
            pb.RegisterModelRequest(metadata=_metadata("edge-o"), load_config=_struct({LONG: 1})),
            invalid,
        ),
        "metric-name": (
            registry.UpdateMetrics, pb.UpdateMetricsRequest(model_id="minilm-old", metrics={LONG: 1.0}), invalid,
        ),
        "version-range": (registry.ListModels, pb.ListModelsRequest(version_range=f">={LONG}"), invalid),
        "embed-model": (embed, embedding_pb2.EmbedRequest(texts=["a"], model=LONG), invalid),
        "embed-request-id": (embed, embedding_pb2.EmbedRequest(texts=["a"], request_id=LONG), invalid),
    }  # fmt: skip


# The keys of _long_input_calls (which needs a channel, so it cannot run at collection).
LONG_INPUT_CASES = [
    "get-model", "model-info", "compare", "set-alias-target", "set-alias-name", "rollback", "register-id",
    "register-version", "register-option", "metric-name", "version-range", "embed-model", "embed-request-id",
]  # fmt: skip


@pytest.mark.parametrize("case", LONG_INPUT_CASES)
def test_long_inputs_are_not_echoed_and_answer_their_own_code(channel: grpc.Channel, case: str) -> None:
    """Item 13: a 20,000-character id was echoed into the message and the ErrorInfo metadata, the trailers
    outgrew what clients accept, and the client saw RESOURCE_EXHAUSTED instead of the real answer."""
    call, request, code = _long_input_calls(channel)[case]

    error = _refusal(call, request)

    assert error.code() == code, error.details()[:300]
    status = rpc_status.from_call(error)
    assert status is not None
    info = error_details_pb2.ErrorInfo()
    status.details[0].Unpack(info)
    assert all(len(value) <= 128 for value in info.metadata.values())


# -- item 14: what is stored must be well-formed ---------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"model_id": "edge\x00nul"}, "model_id"),
        ({"model_id": "edge\x1b[31mred"}, "model_id"),
        ({"model_id": "edge\u200bzero-width"}, "model_id"),
        ({"model_name": "edge name"}, "model_name"),
        ({"version": "99999999999999999999999.0.0"}, "2147483647"),
        ({"description": "fine\x07bell"}, "description"),
        ({"tags": ["ok", "bad\u202etag"]}, "tags[1]"),
        ({"embedding_dim": 10_000_000}, "embedding_dim"),
    ],
    ids=["nul-in-id", "escape-in-id", "zero-width-in-id", "space-in-name", "huge-version", "bell-in-description",
         "bidi-override-in-tag", "absurd-dimension"],
)  # fmt: skip
def test_malformed_metadata_is_refused_not_stored(
    registry: registry_pb2_grpc.RegistryServiceStub, fields: dict[str, Any], named: str
) -> None:
    """Item 14: ids with NUL, escape or zero-width characters, a name with a space and a version of 23
    digits were stored as given, and then named in logs, metrics and other programs' indexes."""
    metadata = _metadata(fields.pop("model_id", "edge-bad"), **fields)

    error = _refusal(registry.RegisterModel, pb.RegisterModelRequest(metadata=metadata))

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and named in error.details()
    assert _not_stored(registry, metadata.model_id)


def test_an_alias_with_a_space_is_refused(registry: registry_pb2_grpc.RegistryServiceStub) -> None:
    """Item 14: SetAlias stored an alias with a space, which no reference ``name@alias`` can name cleanly."""
    error = _refusal(registry.SetAlias, pb.SetAliasRequest(model_name="minilm", alias="my alias", target="1.0.0"))

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "alias" in error.details()
    assert "my alias" not in registry.GetModel(pb.GetModelRequest(model="minilm-onnx"), timeout=10).record.aliases


def test_an_embedding_dim_other_than_the_models_is_refused(
    registry: registry_pb2_grpc.RegistryServiceStub, onnx_export_dir: Path
) -> None:
    """Item 14: embedding_dim 7 was stored for a 384-dimensional model, which then served 384."""
    request = pb.RegisterModelRequest(
        metadata=_metadata("edge-dim", embedding_dim=7), artifact_path=str(onnx_export_dir)
    )

    error = _refusal(registry.RegisterModel, request)

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "384" in error.details()
    assert _not_stored(registry, "edge-dim")


@pytest.mark.parametrize("call", ["register", "update"])
def test_a_ranking_metric_outside_0_to_1_is_refused(registry: registry_pb2_grpc.RegistryServiceStub, call: str) -> None:
    """Item 14: ndcg_at_10 = -5 was stored; ranking metrics are fractions in [0, 1]."""
    if call == "register":
        request: Any = pb.RegisterModelRequest(metadata=_metadata("edge-ndcg"), metrics={"ndcg_at_10": -5.0})
        error = _refusal(registry.RegisterModel, request)
    else:
        error = _refusal(
            registry.UpdateMetrics, pb.UpdateMetricsRequest(model_id="minilm-old", metrics={"recall@5": 7})
        )

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "[0, 1]" in error.details()
    assert "recall@5" not in registry.GetModel(pb.GetModelRequest(model="minilm-old"), timeout=10).record.metrics


@pytest.mark.parametrize(
    "texts", [["fine", "\x00\x01\x1b"], ["fine", "\u200b\u200d\ufeff"]], ids=["controls", "zero-width"]
)
def test_texts_without_a_visible_character_are_refused_like_empty_ones(channel: grpc.Channel, texts: list[str]) -> None:
    """Item 14: texts made only of control or zero-width characters all embedded to one identical vector;
    like an empty text (refused by the engine), such a text is refused naming its index."""
    embed = embedding_pb2_grpc.EmbeddingServiceStub(channel).Embed

    error = _refusal(embed, embedding_pb2.EmbedRequest(texts=texts))

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "texts[1]" in error.details()


def test_a_text_with_some_control_characters_still_embeds(channel: grpc.Channel) -> None:
    response = embedding_pb2_grpc.EmbeddingServiceStub(channel).Embed(
        embedding_pb2.EmbedRequest(texts=["tab\tand\x00nul, but words too"]), timeout=30
    )
    assert (response.count, response.dimension) == (1, 384)


# -- item 6 leftover: Struct numbers are doubles ---------------------------------------------------


def test_a_whole_onnx_threads_sent_as_a_double_is_accepted_as_an_integer(
    channel: grpc.Channel, registry: registry_pb2_grpc.RegistryServiceStub, onnx_export_dir: Path
) -> None:
    """Item 6 leftover: ``onnx_threads: 1`` arrives as 1.0 in a Struct; it was stored as 1.0 and every
    load of the model then failed ("onnx_threads must be a positive integer")."""
    config = _struct({"additional_config": {"onnx_threads": 1}})
    request = pb.RegisterModelRequest(
        metadata=_metadata("edge-threads", model_name="edgethreads"), artifact_path=str(onnx_export_dir),
        load_config=config,
    )  # fmt: skip

    record = registry.RegisterModel(request, timeout=60).record
    response = embedding_pb2_grpc.EmbeddingServiceStub(channel).Embed(
        embedding_pb2.EmbedRequest(texts=["aspirin"], model="edge-threads"), timeout=60
    )

    assert record.load_config["additional_config"]["onnx_threads"] == 1
    assert (response.count, response.served_by.model_id) == (1, "edge-threads")


@pytest.mark.parametrize("threads", [1.5, 0, -2, 1e9], ids=["fraction", "zero", "negative", "absurd"])
def test_an_onnx_threads_that_is_no_positive_whole_number_is_refused(
    registry: registry_pb2_grpc.RegistryServiceStub, threads: float
) -> None:
    request = pb.RegisterModelRequest(
        metadata=_metadata("edge-threads-bad"), load_config=_struct({"additional_config": {"onnx_threads": threads}})
    )
    error = _refusal(registry.RegisterModel, request)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "onnx_threads" in error.details()


# -- item 12: RollbackAlias undoes a client's SetAlias -------------------------------------------------


def test_rollback_recovers_an_alias_first_pointed_at_a_broken_model(
    channel: grpc.Channel, registry: registry_pb2_grpc.RegistryServiceStub, onnx_export_dir: Path, tmp_path: Path
) -> None:
    """Item 12: a client pointed a never-set ``production`` at a broken model; embeddings failed and
    RollbackAlias answered "no earlier target to roll back to", even forced, so no client could undo it."""
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "hostname").write_text("not a model\n")
    for model_id, version, artifact in (("fresh-1", "1.0.0", onnx_export_dir), ("fresh-bad", "0.5.0", broken)):
        metadata = _metadata(model_id, model_name="fresh", version=version)
        registry.RegisterModel(pb.RegisterModelRequest(metadata=metadata, artifact_path=str(artifact)), timeout=60)
    embed = embedding_pb2_grpc.EmbeddingServiceStub(channel).Embed
    assert embed(embedding_pb2.EmbedRequest(texts=["a"], model="fresh"), timeout=60).served_by.model_id == "fresh-1"

    registry.SetAlias(pb.SetAliasRequest(model_name="fresh", alias="production", target="fresh-bad"), timeout=10)
    with pytest.raises(grpc.RpcError):
        embed(embedding_pb2.EmbedRequest(texts=["a"], model="fresh"), timeout=60)
    refused = _refusal(registry.RollbackAlias, pb.RollbackAliasRequest(model_name="fresh", alias="production"))
    back = registry.RollbackAlias(
        pb.RollbackAliasRequest(model_name="fresh", alias="production", force=True), timeout=10
    )

    assert refused.code() == grpc.StatusCode.FAILED_PRECONDITION and "force" in refused.details()

    assert back.record.metadata.model_id == "fresh-1" and "production" not in back.record.aliases
    assert embed(embedding_pb2.EmbedRequest(texts=["a"], model="fresh"), timeout=60).served_by.model_id == "fresh-1"


# -- ListLoadedModels after a delete -----------------------------------------------------------------


def test_listing_loaded_models_survives_the_deletion_of_a_loaded_one(
    channel: grpc.Channel, registry: registry_pb2_grpc.RegistryServiceStub, onnx_export_dir: Path
) -> None:
    """A model deleted while loaded made ListLoadedModels answer NOT_FOUND for every client."""
    metadata = _metadata("edge-gone", model_name="edgegone")
    registry.RegisterModel(pb.RegisterModelRequest(metadata=metadata, artifact_path=str(onnx_export_dir)), timeout=60)
    embedding_pb2_grpc.EmbeddingServiceStub(channel).Embed(
        embedding_pb2.EmbedRequest(texts=["a"], model="edge-gone"), timeout=60
    )
    assert registry.DeleteModel(pb.DeleteModelRequest(model_id="edge-gone"), timeout=10).deleted

    loaded = model_pb2_grpc.ModelServiceStub(channel).ListLoadedModels(model_pb2.ListLoadedModelsRequest(), timeout=10)

    assert "edge-gone" not in {model.model_id for model in loaded.models}
    assert "minilm-onnx" in {model.model_id for model in loaded.models}
