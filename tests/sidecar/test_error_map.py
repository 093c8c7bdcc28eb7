"""The one map from core errors to gRPC status codes is complete and applied with ErrorInfo."""

from __future__ import annotations

import grpc
import pytest
from google.rpc import error_details_pb2

from rag_factory import errors
from sidecar.errors import ERROR_DOMAIN, STATUS_CODES, status_for

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
