"""Stamp the nodes that ``VectorStoreIndex`` embeds through ``RagFactoryEmbedding``.

``VectorStoreIndex`` (``from_documents``, ``VectorStoreIndex(nodes)``, ``insert``, ``insert_nodes`` and
their async twins) embeds nodes with the module-level helpers ``embed_nodes`` and ``async_embed_nodes``
it imports from ``llama_index.core.indices.utils``, which hand the embedding model bare texts. Nothing in
LlamaIndex's public API lets the model see the nodes, so nothing could record which model made each
vector. :func:`install` wraps those two helpers in that one module: for a ``RagFactoryEmbedding`` they
embed and stamp the nodes (see :mod:`plugin.versioning`) and refuse nodes already embedded by another
model; for every other embedding model they call LlamaIndex's own helper unchanged.

The wrapper depends on LlamaIndex internals, so ``pyproject.toml`` bounds ``llama-index-core`` and a test
per ingestion path (tests/plugin/test_pinned_indexes.py) fails if a LlamaIndex release moves them.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from llama_index.core.indices.vector_store import base as vector_store_base
from llama_index.core.schema import BaseNode

from plugin.versioning import aembed_nodes, stamped_model_id
from plugin.versioning import embed_nodes as embed_and_stamp
from rag_factory.errors import FailedPreconditionError

EmbedMap = dict[str, list[float]]
_MARK = "__rag_factory_stamping__"


def _is_ours(embed_model: Any) -> bool:
    from plugin.llama_index_embedding import RagFactoryEmbedding  # a cycle at import time otherwise

    return isinstance(embed_model, RagFactoryEmbedding)


def _split(nodes: Sequence[BaseNode]) -> tuple[list[BaseNode], EmbedMap]:
    pending = [node for node in nodes if node.embedding is None]
    ready = {node.node_id: list(node.embedding) for node in nodes if node.embedding is not None}
    return pending, ready


def _check_already_embedded(nodes: Sequence[BaseNode], embed_model: Any) -> None:
    stamped = {stamped_model_id(node) for node in nodes if node.embedding is not None} - {None}
    if not stamped:
        return
    expected = embed_model.current_model_id()
    others = sorted(str(model_id) for model_id in stamped if model_id != expected)
    if others:
        raise FailedPreconditionError(
            f"nodes already embedded by {', '.join(others)} were given to an index embedded by {expected!r}; "
            f"an index holds one model's vectors: re-embed them (reembed_stale_nodes) first",
            model_id=expected,
        )


def _wrap_sync(original: Callable[..., EmbedMap]) -> Callable[..., EmbedMap]:
    @functools.wraps(original)
    def embed_nodes(nodes: Sequence[BaseNode], embed_model: Any, show_progress: bool = False) -> EmbedMap:
        if not _is_ours(embed_model):
            return original(nodes, embed_model, show_progress=show_progress)
        _check_already_embedded(nodes, embed_model)
        pending, embeddings = _split(nodes)
        embed_and_stamp(pending, embed_model)
        embeddings.update({node.node_id: list(node.embedding or []) for node in pending})
        return embeddings

    setattr(embed_nodes, _MARK, True)
    return embed_nodes


def _wrap_async(original: Callable[..., Awaitable[EmbedMap]]) -> Callable[..., Awaitable[EmbedMap]]:
    @functools.wraps(original)
    async def async_embed_nodes(nodes: Sequence[BaseNode], embed_model: Any, show_progress: bool = False) -> EmbedMap:
        if not _is_ours(embed_model):
            return await original(nodes, embed_model, show_progress=show_progress)
        _check_already_embedded(nodes, embed_model)
        pending, embeddings = _split(nodes)
        await aembed_nodes(pending, embed_model)
        embeddings.update({node.node_id: list(node.embedding or []) for node in pending})
        return embeddings

    setattr(async_embed_nodes, _MARK, True)
    return async_embed_nodes


def install() -> None:
    """Wrap ``VectorStoreIndex``'s embedding helpers once per process (idempotent)."""
    for name, wrap in (("embed_nodes", _wrap_sync), ("async_embed_nodes", _wrap_async)):
        original = getattr(vector_store_base, name)
        if not getattr(original, _MARK, False):
            setattr(vector_store_base, name, wrap(original))
