"""What an embedding call returns on the client: the vectors, who served them and how long it took."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from rag_factory.errors import FailedPreconditionError, RagFactoryError
from rag_factory_contract.v1 import common_pb2, embedding_pb2

VariantName = Literal["control", "candidate", ""]

_VARIANT_NAMES: dict[int, VariantName] = {
    common_pb2.VARIANT_CONTROL: "control",
    common_pb2.VARIANT_CANDIDATE: "candidate",
}


@dataclass(frozen=True)
class ServedBy:
    """Exactly which model produced a result (mirrors ``rag_factory.v1.ServedBy``)."""

    model_id: str
    model_name: str
    version: str
    variant: VariantName  # "" when no experiment routed the call
    experiment: str = ""
    fallback: bool = False
    fallback_reason: str = ""
    requested_model: str = ""
    backend: str = ""
    precision: str = ""

    @classmethod
    def from_proto(cls, message: common_pb2.ServedBy) -> ServedBy:
        """Convert the wire message."""
        return cls(
            model_id=message.model_id,
            model_name=message.model_name,
            version=message.version,
            variant=_VARIANT_NAMES.get(message.variant, ""),
            experiment=message.experiment,
            fallback=message.fallback,
            fallback_reason=message.fallback_reason,
            requested_model=message.requested_model,
            backend=message.backend,
            precision=message.precision,
        )


@dataclass(frozen=True)
class Timings:
    """Server-side timings of one request, in milliseconds."""

    queue_ms: float
    inference_ms: float
    total_ms: float
    batch_texts: int  # texts in the micro-batch the request rode in

    @classmethod
    def from_proto(cls, message: common_pb2.Timings) -> Timings:
        """Convert the wire message."""
        return cls(message.queue_ms, message.inference_ms, message.total_ms, message.batch_texts)


@dataclass(frozen=True)
class EmbedResult:
    """The embeddings of one call, in input order, stamped with the model that made them."""

    vectors: NDArray[np.float32]  # (count, dimension)
    served_by: ServedBy
    timings: tuple[Timings, ...]  # one per request; several when the call was split into batches
    request_ids: tuple[str, ...]
    latency_ms: float  # wall time seen by the client, all requests included

    @property
    def model_id(self) -> str:
        """Id of the model version that served the call."""
        return self.served_by.model_id

    @property
    def version(self) -> str:
        """Semantic version of that model."""
        return self.served_by.version

    @property
    def variant(self) -> VariantName:
        """A/B arm that served the call ("" when none)."""
        return self.served_by.variant

    @property
    def fallback(self) -> bool:
        """Whether the base model served because the requested one failed."""
        return self.served_by.fallback

    @property
    def count(self) -> int:
        """Number of vectors."""
        return int(self.vectors.shape[0])

    @property
    def dimension(self) -> int:
        """Length of each vector."""
        return int(self.vectors.shape[1])


def decode_vectors(response: embedding_pb2.EmbedResponse) -> NDArray[np.float32]:
    """The ``(count, dimension)`` float32 matrix of a response, whichever encoding it used.

    Raises:
        RagFactoryError: The payload does not hold ``count x dimension`` values.
    """
    count, dimension = response.count, response.dimension
    packed = response.encoding == embedding_pb2.VECTOR_ENCODING_PACKED_FLOAT32 or (
        response.encoding == embedding_pb2.VECTOR_ENCODING_UNSPECIFIED and bool(response.packed)
    )
    if packed:
        if len(response.packed) != count * dimension * 4:
            raise RagFactoryError(
                f"malformed EmbedResponse: {len(response.packed)} packed bytes for {count}x{dimension} float32"
            )
        # Little-endian on the wire; astype copies into a writable native-order array.
        return np.frombuffer(response.packed, dtype="<f4").reshape(count, dimension).astype(np.float32)
    if len(response.vectors) != count or any(len(v.values) != dimension for v in response.vectors):
        raise RagFactoryError(f"malformed EmbedResponse: vectors do not form a {count}x{dimension} matrix")
    matrix = np.empty((count, dimension), dtype=np.float32)
    for row, vector in enumerate(response.vectors):
        matrix[row] = vector.values
    return matrix


def result_from_response(response: embedding_pb2.EmbedResponse, latency_ms: float) -> EmbedResult:
    """Convert one ``EmbedResponse``."""
    return EmbedResult(
        vectors=decode_vectors(response),
        served_by=ServedBy.from_proto(response.served_by),
        timings=(Timings.from_proto(response.timings),),
        request_ids=(response.request_id,),
        latency_ms=latency_ms,
    )


def concat_results(parts: Sequence[EmbedResult], latency_ms: float) -> EmbedResult:
    """Join the results of consecutive batches of one call.

    Raises:
        FailedPreconditionError: Batches were served by different models, so their vectors live in
            different spaces and must not be mixed.
    """
    served = {part.model_id for part in parts}
    if len(served) > 1:
        raise FailedPreconditionError(
            f"the batches of one call were served by different models ({', '.join(sorted(served))}); "
            "pass a routing_key to pin one A/B arm"
        )
    return EmbedResult(
        vectors=np.concatenate([part.vectors for part in parts], axis=0),
        served_by=parts[0].served_by,
        timings=tuple(t for part in parts for t in part.timings),
        request_ids=tuple(r for part in parts for r in part.request_ids),
        latency_ms=latency_ms,
    )
