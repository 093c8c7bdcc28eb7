"""The HTTP API's errors come from the gRPC map (one table, two surfaces) in the OpenAI error shape; its settings."""

from __future__ import annotations

import pytest

from rag_factory import errors
from sidecar.errors import STATUS_CODES
from sidecar.http.errors import HTTP_STATUSES, HTTPProblem, describe
from sidecar.settings import SidecarSettings, load_settings

ERROR_CLASSES = errors.all_error_classes()


def test_every_grpc_code_the_core_uses_has_an_http_status() -> None:
    assert {STATUS_CODES[name] for name in errors.StatusName.__args__} <= set(HTTP_STATUSES)  # type: ignore[attr-defined]


@pytest.mark.parametrize("cls", ERROR_CLASSES, ids=lambda cls: cls.__name__)
def test_each_error_class_answers_the_http_status_of_its_grpc_code_with_its_reason(
    cls: type[errors.RagFactoryError],
) -> None:
    status, body, _ = describe(cls("something went wrong", model_id="m"))

    assert status == HTTP_STATUSES[STATUS_CODES[cls.code]]
    error = body["error"]
    assert (error["message"], error["code"], error["status"]) == ("something went wrong", cls.reason, cls.code)
    assert error["metadata"] == {"model_id": "m"} and set(error) >= {"message", "type", "param", "code"}


@pytest.mark.parametrize(
    ("cls", "status"),
    [
        (errors.InvalidArgumentError, 400),
        (errors.ModelNotFoundError, 404),
        (errors.AlreadyExistsError, 409),
        (errors.PermissionDeniedError, 403),
        (errors.ModelDeprecatedError, 409),
        (errors.ResourceExhaustedError, 429),
        (errors.ModelLoadError, 503),
        (errors.FallbackRefusedError, 503),
        (errors.DeadlineExceededError, 504),
        (errors.ArtifactIntegrityError, 500),
    ],
    ids=lambda value: getattr(value, "__name__", str(value)),
)
def test_the_statuses_clients_expect(cls: type[errors.RagFactoryError], status: int) -> None:
    assert describe(cls("x"))[0] == status


def test_overload_says_when_to_retry_and_client_mistakes_say_not_to() -> None:
    assert describe(errors.ResourceExhaustedError("queue full"))[2] == {"retry-after": "1"}
    # The openai client would otherwise retry a 409 twice, and fail twice more.
    assert describe(errors.ModelDeprecatedError("deprecated"))[2] == {"x-should-retry": "false"}
    assert "x-should-retry" not in describe(errors.ModelLoadError("broken"))[2]


def test_an_unexpected_error_is_a_500_with_a_generic_message() -> None:
    status, body, _ = describe(KeyError("secret internals"))
    assert (status, body["error"]["code"], body["error"]["type"]) == (500, "INTERNAL", "server_error")
    assert "secret" not in body["error"]["message"]


def test_the_field_at_fault_is_named_in_the_http_request_s_own_words() -> None:
    # The core speaks of texts and routing_key; the OpenAI request calls them input and user.
    assert (
        describe(errors.InvalidArgumentError("texts[2] is empty; every text needs some content"))[1]["error"]["param"]
        == "input"
    )
    assert describe(errors.ModelNotFoundError("model 'x' is not registered"))[1]["error"]["param"] == "model"
    assert (
        describe(errors.InvalidArgumentError("routing_key is longer than 256 characters"))[1]["error"]["param"]
        == "user"
    )


def test_an_http_problem_keeps_its_status_reason_and_headers() -> None:
    problem = HTTPProblem(401, "UNAUTHENTICATED", "wrong token", headers={"www-authenticate": "Bearer"})
    status, body, headers = describe(problem)
    assert (status, body["error"]["code"], body["error"]["type"]) == (401, "UNAUTHENTICATED", "authentication_error")
    assert headers == {"www-authenticate": "Bearer", "x-should-retry": "false"}


def test_http_is_on_loopback_port_8080_by_default() -> None:
    assert SidecarSettings().http_address == "127.0.0.1:8080"


@pytest.mark.parametrize("value", ["null", "off", "none", "~"])
def test_the_environment_turns_http_off(value: str) -> None:
    assert load_settings(environ={"RAG_FACTORY_HTTP_ADDRESS": value}).http_address is None


def test_the_environment_moves_http() -> None:
    assert load_settings(environ={"RAG_FACTORY_HTTP_ADDRESS": "127.0.0.1:0"}).http_address == "127.0.0.1:0"
