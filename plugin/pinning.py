"""Pins: the one exact model version an index's vectors, and so its query vectors, come from.

A model reference such as ``minilm`` or ``minilm@production`` moves when the alias moves, and an A/B
experiment on the alias sends part of its traffic to another model. An exact version ``minilm@1.2.0`` does
neither: the sidecar never routes it to an experiment arm and always resolves it to the same model. So an
index embeds its documents and its queries with the exact version that the reference named when the
index was built, and moving the index to a new version is an explicit re-embedding.
"""

from __future__ import annotations

from dataclasses import dataclass

from rag_factory.errors import FailedPreconditionError, ModelDeprecatedError, NotFoundError, RagFactoryError
from rag_factory_contract.v1 import model_pb2


@dataclass(frozen=True)
class ModelPin:
    """The exact model version an index belongs to."""

    model_id: str
    model_name: str
    version: str

    @property
    def reference(self) -> str:
        """``name@version``: what the pinned index asks the sidecar for."""
        return f"{self.model_name}@{self.version}"

    @classmethod
    def from_info(cls, info: model_pb2.ModelInfo) -> ModelPin:
        """The pin of the model a ``GetModelInfo`` call resolved."""
        return cls(model_id=info.model_id, model_name=info.model_name, version=info.version)

    def __str__(self) -> str:
        return f"{self.reference} ({self.model_id})"


def explain_unusable_pin(pin: ModelPin, error: RagFactoryError) -> RagFactoryError:
    """The sidecar refused the pinned version: say that the index must be re-embedded, not silently moved.

    Deleted or deprecated versions are refused for new traffic. Answering the query with another version
    would search this index with vectors of another space, so the query fails with the same error class
    and a message naming the way out.
    """
    if not isinstance(error, NotFoundError | ModelDeprecatedError):
        return error
    state = "was deprecated" if isinstance(error, ModelDeprecatedError) else "is no longer registered"
    message = (
        f"this index was built with {pin}, which {state}: its vectors can only be searched with query "
        f"vectors of that exact version. Re-embed the index with a current version "
        f"(plugin.build_pinned_index with RagFactoryEmbedding(model=...).repinned()) and switch to the new "
        f"index. Sidecar said: {error.message}"
    )
    return type(error)(message, **{**error.metadata, "model_id": pin.model_id})


def check_same_pin(expected: ModelPin, found_model_id: str, what: str) -> None:
    """Raise when ``what`` belongs to another model than ``expected``."""
    if found_model_id != expected.model_id:
        raise FailedPreconditionError(
            f"{what} belongs to model {found_model_id!r}, but this index is pinned to {expected}; vectors of two "
            f"models cannot be searched together. Re-embed it with build_pinned_index()",
            model_id=expected.model_id,
        )
