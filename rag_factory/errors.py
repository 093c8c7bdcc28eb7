"""The one error tree of RAG Factory; the sidecar maps each class once to a gRPC status.

Every error carries a stable ``reason`` (sent as ``google.rpc.ErrorInfo.reason``) and a
``code`` naming the gRPC status it maps to.  The core library never imports grpc, so the code
is a plain string; ``sidecar`` turns it into ``grpc.StatusCode``.

    RagFactoryError
    ├── InvalidArgumentError ............ INVALID_ARGUMENT
    │   ├── UnknownFormatError
    │   ├── InvalidVersionError
    │   ├── InvalidConfigError
    │   └── DatasetError
    ├── NotFoundError ................... NOT_FOUND
    │   ├── ModelNotFoundError
    │   ├── ModelPathNotFoundError
    │   ├── HubModelNotAvailableError
    │   └── AliasNotFoundError
    ├── AlreadyExistsError .............. ALREADY_EXISTS
    │   └── DuplicateVersionError
    ├── PermissionDeniedError ........... PERMISSION_DENIED
    ├── FailedPreconditionError ......... FAILED_PRECONDITION
    │   ├── ModelDeprecatedError
    │   ├── UntrustedModelFileError
    │   └── TrainingCancelledError
    ├── ArtifactIntegrityError .......... DATA_LOSS
    ├── UnavailableError ................ UNAVAILABLE
    │   ├── ModelLoadError
    │   │   └── FallbackRefusedError
    │   ├── DownloadError
    │   └── BatcherClosedError
    ├── DeadlineExceededError ........... DEADLINE_EXCEEDED
    └── ResourceExhaustedError .......... RESOURCE_EXHAUSTED
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar, Literal

StatusName = Literal[
    "INTERNAL",
    "INVALID_ARGUMENT",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "FAILED_PRECONDITION",
    "PERMISSION_DENIED",
    "DATA_LOSS",
    "UNAVAILABLE",
    "RESOURCE_EXHAUSTED",
    "DEADLINE_EXCEEDED",
]


class RagFactoryError(Exception):
    """Base class of every error RAG Factory raises on purpose."""

    reason: ClassVar[str] = "RAG_FACTORY_ERROR"
    code: ClassVar[StatusName] = "INTERNAL"

    def __init__(self, message: str, **metadata: str) -> None:
        super().__init__(message)
        self.message = message
        # Sent as ErrorInfo.metadata: machine-readable details such as the model id.
        self.metadata: dict[str, str] = metadata


class InvalidArgumentError(RagFactoryError):
    """The caller passed a value that can never be valid."""

    reason = "INVALID_ARGUMENT"
    code = "INVALID_ARGUMENT"


class UnknownFormatError(InvalidArgumentError):
    """A model format (or pooling strategy, strategy name, ...) that we do not know."""

    reason = "UNKNOWN_FORMAT"


class InvalidVersionError(InvalidArgumentError):
    """A version string or version range that is not valid semver."""

    reason = "INVALID_VERSION"


class InvalidConfigError(InvalidArgumentError):
    """A configuration whose fields do not fit together."""

    reason = "INVALID_CONFIG"


class DatasetError(InvalidArgumentError):
    """A dataset that is missing files or is inconsistent."""

    reason = "INVALID_DATASET"


class NotFoundError(RagFactoryError):
    """Something the caller named does not exist."""

    reason = "NOT_FOUND"
    code = "NOT_FOUND"


class ModelNotFoundError(NotFoundError):
    """A model id, name or version that is not registered."""

    reason = "MODEL_NOT_FOUND"


class ModelPathNotFoundError(NotFoundError):
    """A model path that does not exist on disk."""

    reason = "MODEL_PATH_NOT_FOUND"


class HubModelNotAvailableError(NotFoundError):
    """A hub id with no local copy; this machine cannot download from model hubs."""

    reason = "HUB_MODEL_NOT_AVAILABLE"


class AliasNotFoundError(NotFoundError):
    """An alias that is not set for a model name."""

    reason = "ALIAS_NOT_FOUND"


class AlreadyExistsError(RagFactoryError):
    """Creating something that already exists."""

    reason = "ALREADY_EXISTS"
    code = "ALREADY_EXISTS"


class DuplicateVersionError(AlreadyExistsError):
    """A model id, or a (name, version) pair, that is already registered."""

    reason = "DUPLICATE_VERSION"


class PermissionDeniedError(RagFactoryError):
    """The caller may not ask for this over the network; only the server's operator may."""

    reason = "PERMISSION_DENIED"
    code = "PERMISSION_DENIED"


class FailedPreconditionError(RagFactoryError):
    """The request is valid but the system is not in a state that allows it."""

    reason = "FAILED_PRECONDITION"
    code = "FAILED_PRECONDITION"


class ModelDeprecatedError(FailedPreconditionError):
    """A deprecated version asked for new traffic without ``force``."""

    reason = "MODEL_DEPRECATED"


class UntrustedModelFileError(FailedPreconditionError):
    """A pickle file that could run arbitrary code, loaded without the trusted flag."""

    reason = "UNTRUSTED_MODEL_FILE"


class TrainingCancelledError(FailedPreconditionError):
    """A fine-tuning run was cancelled; nothing was exported or registered."""

    reason = "TRAINING_CANCELLED"


class ArtifactIntegrityError(RagFactoryError):
    """An artifact whose sha256 does not match what was recorded."""

    reason = "ARTIFACT_CORRUPT"
    code = "DATA_LOSS"


class UnavailableError(RagFactoryError):
    """A transient failure: retrying later may succeed."""

    reason = "UNAVAILABLE"
    code = "UNAVAILABLE"


class ModelLoadError(UnavailableError):
    """A model that exists but failed to load or to run."""

    reason = "MODEL_LOAD_FAILED"


# Under ModelLoadError, so UNAVAILABLE: the model did fail, and a load failure is retried after a
# window (the engine's LOAD_RETRY_AFTER_S), so retrying later may succeed without the caller changing
# anything; callers that already catch ModelLoadError keep catching it. FAILED_PRECONDITION would tell
# clients never to retry as is, which is wrong for a model that was only briefly unloadable.
class FallbackRefusedError(ModelLoadError):
    """The requested model failed, and the request did not allow the default model to answer instead."""

    reason = "FALLBACK_REFUSED"


class DownloadError(UnavailableError):
    """An artifact download that failed."""

    reason = "DOWNLOAD_FAILED"


class BatcherClosedError(UnavailableError):
    """A model's batcher was closed (the model was evicted, or the server is stopping) before the request."""

    reason = "BATCHER_CLOSED"


class DeadlineExceededError(RagFactoryError):
    """The caller's deadline passed before the work finished."""

    reason = "DEADLINE_EXCEEDED"
    code = "DEADLINE_EXCEEDED"


class ResourceExhaustedError(RagFactoryError):
    """The server is overloaded (full queue, memory budget)."""

    reason = "RESOURCE_EXHAUSTED"
    code = "RESOURCE_EXHAUSTED"


def all_error_classes() -> list[type[RagFactoryError]]:
    """Every class in the tree, base first; used to check that the status map is complete."""
    found: list[type[RagFactoryError]] = []
    pending: list[type[RagFactoryError]] = [RagFactoryError]
    while pending:
        cls = pending.pop(0)
        found.append(cls)
        pending.extend(cls.__subclasses__())
    return found


def describe_validation_error(exc: Any, limit: int = 5) -> str:
    """One line naming each invalid field of a pydantic ``ValidationError`` ("a.b: message; ...").

    At most ``limit`` fields are named, each cut to about 200 characters: field names and messages can
    hold what a client sent (a dict key, a value quoted by a validator).
    """
    errors = exc.errors()
    described = [f"{'.'.join(map(str, error['loc']))}: {error['msg']}"[:200] for error in errors[:limit]]
    if len(errors) > limit:
        described.append(f"… ({len(errors) - limit} more)")
    return "; ".join(described)


def quoted(value: str, limit: int = 80) -> str:
    """``repr`` of a client-supplied string cut to ``limit`` characters, so no message echoes unbounded input.

    ``repr`` also shows control characters escaped (``'a\\x00b'``), so the reader sees what was sent.
    """
    return repr(value) if len(value) <= limit else f"{value[:limit]!r}… ({len(value):,} characters)"


def describe_choices(values: Iterable[str], limit: int = 8) -> str:
    """Render a short, sorted list of valid choices for an error message."""
    items = sorted(values)
    if not items:
        return "none"
    shown = ", ".join(items[:limit])
    return shown if len(items) <= limit else f"{shown}, … ({len(items) - limit} more)"
