"""The OpenAI embeddings request and response, and what the other HTTP endpoints answer.

The request is read into the gRPC contract's ``EmbedRequest``, so that ``convert.embed_call`` checks it
exactly as it checks a gRPC request (visible text, request id, lengths of the reference and routing key,
``dimensions``): the two surfaces refuse the same requests with the same reasons.
"""

from __future__ import annotations

import base64
import json
import math
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from rag_factory.arrays import VectorArray
from rag_factory.errors import InvalidArgumentError
from rag_factory.serving.engine import EmbedOutcome
from rag_factory_contract.v1 import embedding_pb2
from sidecar.http.errors import HTTPProblem

# The names a client may use for the server's default model: the OpenAI clients always send a model.
DEFAULT_MODEL_NAMES = frozenset({"", "default"})
# Longest deadline a request may ask for with x-rag-factory-timeout-s (the largest gRPC deadline we expect).
MAX_TIMEOUT_S = 3600.0
# Largest `dimensions` the contract can carry (uint32); the engine refuses any above the model's dimension.
_MAX_DIMENSIONS = 2**32 - 1


class EmbeddingsRequest(BaseModel):
    """``POST /v1/embeddings``: the OpenAI request, plus ``domain``, our one extension."""

    model_config = ConfigDict(extra="forbid", strict=True)

    input: str | list[str] = Field(description="One text or a list of texts (token-id arrays are refused).")
    model: str | None = Field(
        default=None, description="A registry reference; omitted, empty or 'default': the server's default model."
    )
    encoding_format: Literal["float", "base64"] = Field(
        default="float", description="float: JSON numbers; base64: little-endian float32 bytes, base64-encoded."
    )
    dimensions: int | None = Field(
        default=None, ge=1, le=_MAX_DIMENSIONS, description="Matryoshka: keep this many leading values, renormalised."
    )
    user: str | None = Field(default=None, description="The A/B routing key (a user or session id; only hashed).")
    domain: str | None = Field(default=None, description="Passed to preprocessing plugins (not an OpenAI field).")

    def texts(self) -> list[str]:
        """The input as a list of texts."""
        return [self.input] if isinstance(self.input, str) else list(self.input)

    def reference(self) -> str:
        """The model reference the engine gets ("" for the default model)."""
        model = self.model or ""
        return "" if model in DEFAULT_MODEL_NAMES else model


_FIELDS = tuple(EmbeddingsRequest.model_fields)


def parse_embeddings_request(body: bytes, *, max_texts: int) -> EmbeddingsRequest:
    """Read and validate a request body (blocking: tens of milliseconds for a large body, so off the event loop).

    What could make validation slow, or its errors many, is refused first with one error: more than
    ``max_texts`` texts (pydantic would build one error per bad item, millions in a 16 MiB body) and
    unknown fields (one error per key).

    Args:
        body: The request body.
        max_texts: The most texts a request may hold (``limits.max_batch_texts``).

    Raises:
        HTTPProblem: 400 when the body is not JSON, not an object, or not the schema, naming the field.
        InvalidArgumentError: More than ``max_texts`` texts, as gRPC words it.
    """
    try:
        data = json.loads(body)
    except RecursionError:  # [[[[...: deeper than the parser's recursion limit
        raise HTTPProblem(400, "INVALID_JSON", "the request body is not valid JSON: it nests too deeply") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, an integer of more than 4300 digits
        raise HTTPProblem(400, "INVALID_JSON", f"the request body is not valid JSON: {str(exc)[:200]}") from None
    if not isinstance(data, dict):
        raise HTTPProblem(400, "INVALID_ARGUMENT", "the request body must be a JSON object")
    unknown = [name for name in data if name not in _FIELDS]
    if unknown:
        # A misspelt field would otherwise be dropped without a word.
        more = f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else ""
        name = unknown[0][:100]
        raise HTTPProblem(
            400, "INVALID_ARGUMENT", f"{name}: unknown field; valid: {', '.join(_FIELDS)}{more}", param=name
        )
    texts = data.get("input")
    if isinstance(texts, list) and len(texts) > max_texts:
        raise InvalidArgumentError(f"{len(texts)} texts exceed the limit of {max_texts} per request; split the batch")
    _refuse_token_ids(texts)
    try:
        return EmbeddingsRequest.model_validate(data)
    except ValidationError as exc:
        # Bounded now (at most max_texts items and a few fields); built once, without the input it quotes.
        error = exc.errors(include_url=False, include_context=False, include_input=False)[0]
        field = _field_name(error["loc"])
        count = exc.error_count()
        more = f" (and {count - 1} more)" if count > 1 else ""
        message = f"{field}: {_message(error)}{more}"
        raise HTTPProblem(400, "INVALID_ARGUMENT", message[:500], param=field.split("[")[0]) from None


def _refuse_token_ids(value: Any) -> None:
    # OpenAI also accepts token ids (a list of ints, or of lists of ints) of its own tokenizers; ours are
    # the model's, and a client cannot know them, so we refuse them with a clear message rather than guess.
    items = value if isinstance(value, list) else []
    if items and all(isinstance(item, int | list) for item in items):
        raise HTTPProblem(
            400, "INVALID_ARGUMENT", "input as token ids is not supported; send a string or a list of strings",
            param="input",
        )  # fmt: skip


def _field_name(loc: tuple[int | str, ...]) -> str:
    # ("input", "list[str]", 3) -> "input[3]": pydantic names the union branch it tried; clients do not care.
    name = str(loc[0]) if loc else "body"
    for part in loc[1:]:
        if isinstance(part, int):
            name += f"[{part}]"
    return name


def _message(error: Any) -> str:
    if error["type"] == "missing":
        return "required"
    return str(error["msg"])


def embed_request(request: EmbeddingsRequest, *, request_id: str, allow_fallback: bool) -> embedding_pb2.EmbedRequest:
    """The gRPC request that says the same (checked by ``convert.embed_call`` like any other).

    Raises:
        HTTPProblem: 400 when a string holds a lone surrogate (JSON's ``"\\ud800"``), which is no text.
    """
    try:
        message = embedding_pb2.EmbedRequest(
            texts=request.texts(),
            model=request.reference(),
            routing_key=request.user or "",
            domain=request.domain or "",
            request_id=request_id,
            allow_fallback=allow_fallback,
        )
    except UnicodeEncodeError:
        raise HTTPProblem(
            400, "INVALID_ARGUMENT",
            "a string holds a lone surrogate (an escape such as \\ud800 without its pair); send valid Unicode",
        ) from None  # fmt: skip
    if request.dimensions is not None:  # optional in the contract: unset keeps every dimension
        message.dimensions = request.dimensions
    return message


def render(body: Any) -> bytes:
    """``body`` as compact JSON bytes (what Starlette's JSONResponse sends), for rendering off the event loop."""
    return json.dumps(body, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8")


def embeddings_response(outcome: EmbedOutcome, encoding_format: str) -> dict[str, Any]:
    """The OpenAI response, with ``rag_factory`` (who served it, timings), a field OpenAI clients ignore.

    ``model`` is the id of the model that served the request: the one whose index the vectors belong to
    (under an A/B test or a fallback it is not the reference that was asked for).
    """
    served = outcome.served_by
    return {
        "object": "list",
        "data": [
            {"object": "embedding", "index": index, "embedding": vector}
            for index, vector in enumerate(_encoded(outcome.vectors, encoding_format))
        ],
        "model": served.model_id,
        # The sidecar does not tokenise in the request path (the model does, in its batch); it reports 0.
        "usage": {"prompt_tokens": 0, "total_tokens": 0},
        "rag_factory": {
            "request_id": outcome.request_id,
            "model_id": served.model_id,
            "model_name": served.model_name,
            "version": served.version,
            "variant": served.variant,
            "experiment": served.experiment,
            "fallback": served.fallback,
            "fallback_reason": served.fallback_reason,
            "requested_model": served.requested_model,
            "backend": served.backend,
            "precision": served.precision,
            "dimensions": int(outcome.vectors.shape[1]),
            "timings": {
                "queue_ms": outcome.queue_ms,
                "inference_ms": outcome.inference_ms,
                "total_ms": outcome.total_ms,
                "batch_texts": outcome.batch_texts,
            },
        },
    }


def _encoded(vectors: VectorArray, encoding_format: str) -> list[Any]:
    if encoding_format == "base64":
        # As OpenAI sends it, and as its client decodes it: little-endian float32, one string per vector.
        little_endian = np.ascontiguousarray(vectors, dtype="<f4")
        return [base64.b64encode(row.tobytes()).decode("ascii") for row in little_endian]
    vectors_as_lists: list[Any] = vectors.tolist()  # float32 values as Python floats (exact in JSON)
    return vectors_as_lists


def served_headers(outcome: EmbedOutcome) -> dict[str, str]:
    """Response headers naming the model that served the request (the same as the body's ``rag_factory``)."""
    served = outcome.served_by
    headers = {
        "x-request-id": outcome.request_id,
        "x-rag-factory-model-id": served.model_id,
        "x-rag-factory-model-version": served.version,
        "x-rag-factory-variant": served.variant,
        "x-rag-factory-experiment": served.experiment,
        "x-rag-factory-fallback": "true" if served.fallback else "false",
        "x-rag-factory-total-ms": f"{outcome.total_ms:.3f}",
    }
    return {name: header_value(value) for name, value in headers.items() if value}


def header_value(value: str, limit: int = 256) -> str:
    """``value`` as printable ASCII of at most ``limit`` characters (registry names already are)."""
    return "".join(c if " " <= c <= "~" else "?" for c in value[:limit])


def timeout_from_header(value: str | None, default_s: float) -> float:
    """The request's deadline in seconds: the ``x-rag-factory-timeout-s`` header, else ``default_s``.

    Raises:
        HTTPProblem: 400 when the header is not a number of seconds in (0, MAX_TIMEOUT_S].
    """
    if value is None:
        return default_s
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not 0 < seconds <= MAX_TIMEOUT_S:
        raise HTTPProblem(
            400, "INVALID_ARGUMENT",
            f"x-rag-factory-timeout-s must be a number of seconds above 0 and at most {MAX_TIMEOUT_S:.0f}; "
            f"got {header_value(value, 40)!r}",
            param="x-rag-factory-timeout-s",
        )  # fmt: skip
    return seconds


def flag_from_header(value: str | None, name: str) -> bool:
    """A boolean header ("true"/"false", "1"/"0"; absent: false).

    Raises:
        HTTPProblem: 400 for any other value.
    """
    if value is None:
        return False
    lowered = value.strip().lower()
    if lowered in ("true", "1"):
        return True
    if lowered in ("false", "0", ""):
        return False
    got = header_value(value, 40)
    raise HTTPProblem(400, "INVALID_ARGUMENT", f"{name} must be true or false; got {got!r}", param=name)
