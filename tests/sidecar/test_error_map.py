"""The one map from core errors to gRPC status codes is complete and applied with ErrorInfo."""

from __future__ import annotations

import grpc
import pytest
from google.rpc import error_details_pb2

from rag_factory import errors
from sidecar.errors import (
    ERROR_DOMAIN,
    MAX_MESSAGE_BYTES,
    MAX_METADATA_ENTRIES,
    MAX_METADATA_VALUE_BYTES,
    STATUS_CODES,
    status_for,
)

ERROR_CLASSES = errors.all_error_classes()


def test_every_status_name_of_the_core_has_a_grpc_code() -> None:
    assert set(STATUS_CODES) == set(errors.StatusName.__args__)  # type: ignore[attr-defined]


@pytest.mark.parametrize("cls", ERROR_CLASSES, ids=lambda cls: cls.__name__)
def test_each_error_class_surfaces_as_its_status_with_its_reason(cls: type[errors.RagFactoryError]) -> None:
    status = status_for(cls("something went wrong", model="m"))
    assert status.code == STATUS_CODES[cls.code].value[0]
    assert status.message == "something went wrong"
    info = error_details_pb2.ErrorInfo()
    status.details[0].Unpack(info)
    assert (info.reason, info.domain, dict(info.metadata)) == (cls.reason, ERROR_DOMAIN, {"model": "m"})


@pytest.mark.parametrize(
    ("cls", "code"),
    [
        (errors.InvalidArgumentError, grpc.StatusCode.INVALID_ARGUMENT),
        (errors.ModelNotFoundError, grpc.StatusCode.NOT_FOUND),
        (errors.ModelLoadError, grpc.StatusCode.UNAVAILABLE),
        (errors.ResourceExhaustedError, grpc.StatusCode.RESOURCE_EXHAUSTED),
        (errors.ModelDeprecatedError, grpc.StatusCode.FAILED_PRECONDITION),
        (errors.ArtifactIntegrityError, grpc.StatusCode.DATA_LOSS),
    ],
    ids=lambda value: getattr(value, "__name__", str(value)),
)
def test_style_guide_mapping(cls: type[errors.RagFactoryError], code: grpc.StatusCode) -> None:
    assert STATUS_CODES[cls.code] == code


def test_reasons_are_unique_so_clients_can_map_them_back() -> None:
    reasons = [cls.reason for cls in ERROR_CLASSES]
    assert len(reasons) == len(set(reasons))


def test_unexpected_errors_become_internal_with_a_generic_message() -> None:
    status = status_for(KeyError("secret internals"))
    assert status.code == grpc.StatusCode.INTERNAL.value[0]
    assert "secret" not in status.message


def test_a_long_message_and_long_metadata_are_cut_to_what_trailers_carry() -> None:
    """Issue 18, item 13: an error echoing a 20,000-character id outgrew the 8 KiB of trailers clients
    accept, and the client saw RESOURCE_EXHAUSTED instead of the error."""
    status = status_for(
        errors.ModelNotFoundError("é" * 20_000, model_id="x" * 20_000, **{f"k{n}": "v" for n in range(20)})
    )

    info = error_details_pb2.ErrorInfo()
    status.details[0].Unpack(info)
    assert len(status.message.encode()) <= MAX_MESSAGE_BYTES and status.message.endswith("…")
    assert all(len(value.encode()) <= MAX_METADATA_VALUE_BYTES for value in info.metadata.values())
    assert len(info.metadata) <= MAX_METADATA_ENTRIES
    assert len(status.SerializeToString()) < 3 * 1024


def test_a_message_that_is_not_valid_unicode_is_still_sent() -> None:
    # A file name that was not UTF-8 reaches Python as lone surrogates, which protobuf refuses to send.
    status = status_for(errors.ModelPathNotFoundError("artifact path '/models/caf\udce9' does not exist"))
    assert status.message == "artifact path '/models/caf?' does not exist"
