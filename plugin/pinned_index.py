"""Build an index of one exact model version: shadow indexing for a candidate, and re-embedding after a move.

:func:`build_pinned_index` embeds a corpus with an embedding pinned to one version, in batches, into a
vector store of its own, so the index being served is never touched. With a checkpoint file and a vector
store that keeps its data (Qdrant, Chroma, pgvector, ...), a build that crashed half-way resumes where it
stopped: finished batches are neither embedded nor written again.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llama_index.core import StorageContext, VectorStoreIndex
from llama_index.core.schema import BaseNode
from llama_index.core.vector_stores.types import BasePydanticVectorStore

from plugin.llama_index_embedding import RagFactoryEmbedding
from plugin.pinning import ModelPin, check_same_pin
from plugin.versioning import embed_nodes
from rag_factory.errors import FailedPreconditionError, InvalidArgumentError

Progress = Callable[[int, int], None]
"""Called after each written batch with (nodes done, nodes in the corpus)."""


@dataclass
class PinnedIndex:
    """A LlamaIndex index together with the pinned embedding that made its vectors and embeds its queries."""

    index: VectorStoreIndex
    embed_model: RagFactoryEmbedding
    ready: bool = True  # False while a shadow build is unfinished: no traffic may be routed to it
    checkpoint: Path | None = field(default=None)

    @property
    def pin(self) -> ModelPin:
        """The exact model version of every vector in the index."""
        return self.embed_model.pinned_model()

    @classmethod
    def from_index(cls, index: VectorStoreIndex) -> PinnedIndex:
        """Wrap an index built with a pinned ``RagFactoryEmbedding`` (``from_documents``, ``VectorStoreIndex(nodes)``).

        Raises:
            InvalidArgumentError: The index was not built with a ``RagFactoryEmbedding`` that pins its version.
        """
        embed_model = index._embed_model  # LlamaIndex keeps it private; the index holds no other handle
        if not isinstance(embed_model, RagFactoryEmbedding) or not embed_model.pin_version:
            raise InvalidArgumentError("the index was not built with a RagFactoryEmbedding pinned to one version")
        return cls(index=index, embed_model=embed_model)


class _Checkpoint:
    """An append-only JSON-lines record of a build: the pin, then the ids of each written batch, then done."""

    def __init__(self, path: Path, pin: ModelPin, total: int) -> None:
        self.path = path
        self.done: set[str] = set()
        self.complete = False
        if path.exists():
            self._read(pin)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            header = {"model_id": pin.model_id, "model_name": pin.model_name, "version": pin.version, "total": total}
            self._append(header)

    def _read(self, pin: ModelPin) -> None:
        lines = [line for line in self.path.read_text(encoding="utf-8").splitlines() if line.strip()]
        parsed: list[dict[str, Any]] = []
        for position, line in enumerate(lines):
            try:
                parsed.append(json.loads(line))
            except json.JSONDecodeError as exc:
                if 0 < position == len(lines) - 1:
                    break  # a crash tore the last line: that batch is written again
                raise InvalidArgumentError(f"{self.path} is not a rag-factory index checkpoint") from exc
        if not parsed or "model_id" not in parsed[0]:
            raise InvalidArgumentError(f"{self.path} is not a rag-factory index checkpoint")
        check_same_pin(pin, str(parsed[0]["model_id"]), f"the checkpoint {self.path}")
        for record in parsed[1:]:
            self.done.update(record.get("ids", []))
            self.complete = self.complete or bool(record.get("complete"))

    def _append(self, record: dict[str, Any]) -> None:
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
            handle.flush()
            os.fsync(handle.fileno())  # a batch counts as done only once this line is on disk

    def record_batch(self, ids: Sequence[str]) -> None:
        self._append({"ids": list(ids)})
        self.done.update(ids)

    def finish(self) -> None:
        self._append({"complete": True})
        self.complete = True


def _batches(nodes: Sequence[BaseNode], size: int) -> Iterator[list[BaseNode]]:
    for start in range(0, len(nodes), size):
        yield list(nodes[start : start + size])


def _open_index(
    embed_model: RagFactoryEmbedding, vector_store: BasePydanticVectorStore | None, resuming: bool
) -> VectorStoreIndex:
    if vector_store is None:
        if resuming:
            raise FailedPreconditionError(
                "the checkpoint says part of the corpus was written, but no vector store was given to resume "
                "into; pass the same persistent vector store, or delete the checkpoint to start again"
            )
        return VectorStoreIndex(nodes=[], embed_model=embed_model)
    if vector_store.stores_text:
        return VectorStoreIndex.from_vector_store(vector_store, embed_model=embed_model)
    if resuming:
        raise FailedPreconditionError(
            f"{type(vector_store).__name__} does not keep its nodes, so a half-written build cannot be resumed "
            f"from it; delete the checkpoint to start again, or use a persistent store (Qdrant, Chroma, pgvector)"
        )
    storage = StorageContext.from_defaults(vector_store=vector_store)
    return VectorStoreIndex(nodes=[], storage_context=storage, embed_model=embed_model)


def build_pinned_index(
    nodes: Sequence[BaseNode],
    embed_model: RagFactoryEmbedding,
    *,
    vector_store: BasePydanticVectorStore | None = None,
    checkpoint: Path | str | None = None,
    batch_size: int = 256,
    progress: Progress | None = None,
) -> PinnedIndex:
    """Embed ``nodes`` with the exact version ``embed_model`` is pinned to, into a new index.

    The nodes are copied first: the caller's nodes, and the index they may belong to, are never changed.

    Args:
        nodes: The corpus (for example the nodes of the index being served).
        embed_model: A pinned embedding; for an alias that moved, ``RagFactoryEmbedding(...).repinned()``.
        vector_store: Where the vectors go; LlamaIndex's in-memory store when None.
        checkpoint: A file recording finished batches, to resume a build that stopped half-way.
        batch_size: Nodes per embedding call and per write.
        progress: Called with (done, total) after each written batch.

    Returns:
        The index, ready to serve.

    Raises:
        InvalidArgumentError: ``batch_size`` is not positive, or ``embed_model`` does not pin its version.
        FailedPreconditionError: The checkpoint belongs to another model, or the store cannot resume.
        RagFactoryError: The mapped error of the sidecar; batches already written stay written.
    """
    if batch_size <= 0:
        raise InvalidArgumentError(f"batch_size must be positive, got {batch_size}")
    if not embed_model.pin_version:
        raise InvalidArgumentError("an index is built with one exact version: use pin_version=True")
    pin = embed_model.pinned_model()
    record = _Checkpoint(Path(checkpoint), pin, len(nodes)) if checkpoint is not None else None
    done = record.done if record is not None else set()
    index = _open_index(embed_model, vector_store, resuming=bool(done))
    pending = [node.model_copy(deep=True) for node in nodes if node.node_id not in done]
    for node in pending:
        node.embedding = None
    finished = len(nodes) - len(pending)
    for batch in _batches(pending, batch_size):
        embed_nodes(batch, embed_model)
        index.insert_nodes(batch)
        if record is not None:
            record.record_batch([node.node_id for node in batch])
        finished += len(batch)
        if progress is not None:
            progress(finished, len(nodes))
    if record is not None and not record.complete:
        record.finish()
    return PinnedIndex(index=index, embed_model=embed_model, ready=True, checkpoint=record.path if record else None)
