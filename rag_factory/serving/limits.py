"""Documented request limits of the embedding service, and the checks that enforce them."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field

from rag_factory.errors import InvalidArgumentError


class RequestLimits(BaseModel):
    """Limits on one embedding request (also documented in protos/rag_factory/v1/embedding.proto)."""

    # A misspelt key in the sidecar's YAML must fail at start, not be ignored.
    model_config = ConfigDict(extra="forbid")

    max_batch_texts: int = Field(default=256, gt=0, description="Most texts in one request.")
    max_text_chars: int = Field(
        default=32_768, gt=0, description="Most characters in one text; tokens beyond the model's limit are cut."
    )
    max_message_bytes: int = Field(default=16 * 1024 * 1024, gt=0, description="Largest gRPC message.")
    max_queued_texts: int = Field(
        default=512,
        gt=0,
        description=(
            "Most texts waiting in one model's queue (besides batching.queue_capacity, in requests). A request "
            "that would pass it answers RESOURCE_EXHAUSTED at once, so clients back off instead of timing "
            "out; a request alone in an empty queue is always accepted. 512: two full requests, a few "
            "seconds of work for MiniLM on two cores."
        ),
    )
    refuse_late_requests: bool = Field(
        default=True,
        description=(
            "Answer RESOURCE_EXHAUSTED at once when the work ahead of a request (the running batch and the "
            "queued texts) and the request itself would take longer than its deadline allows, estimated from "
            "the model's measured time per text. Off: such a request waits, and answers DEADLINE_EXCEEDED, "
            "uncomputed, if its deadline passes first."
        ),
    )


def check_texts(texts: Sequence[str], limits: RequestLimits) -> None:
    """Refuse an empty batch, too many texts, empty texts or over-long texts.

    Raises:
        InvalidArgumentError: With the index of the first offending text.
    """
    if not texts:
        raise InvalidArgumentError(f"texts is empty; send between 1 and {limits.max_batch_texts} texts")
    if len(texts) > limits.max_batch_texts:
        raise InvalidArgumentError(
            f"{len(texts)} texts exceed the limit of {limits.max_batch_texts} per request; split the batch"
        )
    for position, text in enumerate(texts):
        if not text.strip():
            raise InvalidArgumentError(f"texts[{position}] is empty; every text needs some content")
        if len(text) > limits.max_text_chars:
            raise InvalidArgumentError(
                f"texts[{position}] has {len(text)} characters, over the limit of {limits.max_text_chars}"
            )
