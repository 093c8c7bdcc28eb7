"""What a client may report to an experiment: bounded request ids, and outcome metrics it did not forge.

A client reports outcomes (``RecordOutcome``) for requests it was served. Those reports feed the
analysis and the rollout's automatic decisions, so they are checked before anything is stored:

* a request id is 1 to :data:`MAX_REQUEST_ID_CHARS` printable ASCII characters, so a client cannot
  grow the database with megabyte ids, nor hide control characters in them;
* the metrics the server measures itself (:data:`SERVER_METRICS`: each routed request's latency and
  whether its arm failed) are never taken from a client: the error-rate rollback and the step's
  sample count read them, and a forged ``{"error": 1}`` used to roll a healthy candidate back;
* metric names are short printable tokens, few per outcome and few per experiment (each new name
  is a column of every stored outcome and one more test in every analysis);
* values are finite and within :data:`MAX_METRIC_ABS`, so means and variances cannot overflow.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from numbers import Real
from typing import Final

from rag_factory.errors import InvalidArgumentError, quoted

MAX_REQUEST_ID_CHARS: Final = 128
MAX_METRIC_NAME_CHARS: Final = 64
MAX_METRICS_PER_OUTCOME: Final = 16
MAX_METRICS_PER_EXPERIMENT: Final = 32
MAX_METRIC_ABS: Final = 1e9
# Experiment sizes a client may ask for: more samples per arm than this is a typo, not a plan.
MAX_MINIMUM_SAMPLES: Final = 10_000_000
# How much of a client's value an error message or its metadata quotes (as ``quoted``).
QUOTE_CHARS: Final = 80

LATENCY_METRIC: Final = "latency_ms"
ERROR_METRIC: Final = "error"
# Recorded by the server for every routed request (ABRouter); reserved, whatever the case.
SERVER_METRICS: Final = frozenset({LATENCY_METRIC, ERROR_METRIC})


def _printable_token(value: str, limit: int) -> bool:
    # Printable ASCII without spaces: no control, escape, zero-width or look-alike characters.
    return 0 < len(value) <= limit and value.isascii() and all("!" <= c <= "~" for c in value)


def is_valid_request_id(request_id: str) -> bool:
    """Whether ``request_id`` may be stored: 1 to 128 printable ASCII characters, no spaces."""
    return _printable_token(request_id, MAX_REQUEST_ID_CHARS)


def check_request_id(request_id: str) -> str:
    """Return ``request_id`` if it is a valid id (see :func:`is_valid_request_id`).

    Raises:
        InvalidArgumentError: Empty, too long, or with characters other than printable ASCII.
    """
    if not request_id:
        raise InvalidArgumentError("request_id is required: report outcomes with the request_id of an embedding")
    if not is_valid_request_id(request_id):
        raise InvalidArgumentError(
            f"request_id {quoted(request_id)} is not a valid request id: use 1 to {MAX_REQUEST_ID_CHARS} "
            "printable ASCII characters without spaces"
        )
    return request_id


def check_client_metrics(metrics: Mapping[str, float]) -> dict[str, float]:
    """Check outcome metrics a client reports; return them as plain floats.

    Raises:
        InvalidArgumentError: A server-measured metric (``latency_ms``, ``error``), a name that is not
            1 to 64 printable ASCII characters, more than 16 metrics, or a value that is not a
            finite number within ±1e9. The message names the offending key.
    """
    if len(metrics) > MAX_METRICS_PER_OUTCOME:
        raise InvalidArgumentError(
            f"an outcome has at most {MAX_METRICS_PER_OUTCOME} metrics (clicked_rank adds 3), got {len(metrics)}"
        )
    checked: dict[str, float] = {}
    for name, value in metrics.items():
        if not isinstance(name, str) or not _printable_token(name, MAX_METRIC_NAME_CHARS):
            shown = quoted(name) if isinstance(name, str) else type(name).__name__
            raise InvalidArgumentError(
                f"metric name {shown} is not valid: use 1 to {MAX_METRIC_NAME_CHARS} printable ASCII "
                "characters without spaces"
            )
        if name.lower() in SERVER_METRICS:
            raise InvalidArgumentError(
                f"metric {name!r} is measured by the server for every routed request and cannot be reported; "
                f"reserved: {', '.join(sorted(SERVER_METRICS))}",
                metric=name,
            )
        if not isinstance(value, Real) or not math.isfinite(value):
            raise InvalidArgumentError(f"metric {name!r} must be a finite number, got {quoted(str(value))}")
        if abs(value) > MAX_METRIC_ABS:
            raise InvalidArgumentError(f"metric {name!r} must be within ±{MAX_METRIC_ABS:g}, got {value:g}")
        checked[name] = float(value)
    return checked


def check_new_metric_names(names: Iterable[str], known: Iterable[str]) -> None:
    """Refuse names that would take an experiment past :data:`MAX_METRICS_PER_EXPERIMENT` metrics.

    Args:
        names: The metrics of one outcome.
        known: The metrics the experiment already holds.

    Raises:
        InvalidArgumentError: Too many distinct metrics; the message names the first new one refused.
    """
    seen = set(known)
    new = [name for name in names if name not in seen]
    if new and len(seen) + len(new) > MAX_METRICS_PER_EXPERIMENT:
        raise InvalidArgumentError(
            f"metric {new[0]!r} would be metric {len(seen) + len(new)} of this experiment; an experiment "
            f"holds at most {MAX_METRICS_PER_EXPERIMENT}: report one of the existing ones",
            metric=new[0],
        )
