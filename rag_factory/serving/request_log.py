"""The opt-in request log: one JSON line per embedding request on the ``rag_factory.requests`` logger.

A line says who asked for what and how it went, never what was embedded: it holds the number of texts and
their characters, not the texts. The two client strings it repeats (request id and requested reference)
are cut to ``MAX_CLIENT_CHARS``, and JSON escapes every control character, so a client cannot forge lines.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass

REQUEST_LOGGER = logging.getLogger("rag_factory.requests")
# Longest request id or model reference repeated in a line (longer ones are cut and marked with "…").
MAX_CLIENT_CHARS = 128


@dataclass(frozen=True)
class RequestLogEntry:
    """One request's line. Timings are None when the request failed before they were measured."""

    request_id: str
    requested_model: str  # the client's reference, cut; "" for the default model
    model_id: str  # the model that served or failed; "" when the reference did not resolve
    version: str
    variant: str
    experiment: str
    fallback: bool
    texts: int
    chars: int
    status: str  # "ok" or "error"
    reason: str  # ErrorInfo reason; "" when ok
    queue_ms: float | None
    inference_ms: float | None
    total_ms: float

    def to_json(self) -> str:
        """The entry as one JSON object on one line, timings rounded to microseconds."""
        fields = asdict(self)
        fields["request_id"] = _cut(self.request_id)
        fields["requested_model"] = _cut(self.requested_model)
        for name in ("queue_ms", "inference_ms", "total_ms"):
            if fields[name] is not None:
                fields[name] = round(fields[name], 3)
        return json.dumps(fields, ensure_ascii=True, separators=(",", ":"))


def log_request(entry: RequestLogEntry) -> None:
    """Write ``entry`` to the request logger (INFO)."""
    REQUEST_LOGGER.info("%s", entry.to_json())


def _cut(value: str) -> str:
    return value if len(value) <= MAX_CLIENT_CHARS else value[:MAX_CLIENT_CHARS] + "…"
