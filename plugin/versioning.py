"""Version stamps on LlamaIndex nodes, so an index never silently mixes vectors of different models.

Embedding nodes through :func:`embed_nodes` (or through ``RagFactoryEmbedding`` used as a transformation)
records the model id and version that served them in ``node.metadata``. When the default model changes,
:func:`find_stale_nodes` finds the nodes embedded by another model and :func:`reembed_stale_nodes`
re-embeds and restamps exactly those. The stamp keys are excluded from the embed and LLM views of the
metadata, so they never change the embedded text or the prompt.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING

from llama_index.core.schema import BaseNode, MetadataMode

from plugin.pinning import ModelPin
from plugin.results import EmbedResult, ServedBy
from rag_factory.errors import FailedPreconditionError, RagFactoryError

if TYPE_CHECKING:
    from plugin.llama_index_embedding import RagFactoryEmbedding

MODEL_ID_KEY = "rag_factory_model_id"
MODEL_VERSION_KEY = "rag_factory_model_version"
MODEL_NAME_KEY = "rag_factory_model_name"
STAMP_KEYS = (MODEL_ID_KEY, MODEL_VERSION_KEY, MODEL_NAME_KEY)


def stamped_model_id(node: BaseNode) -> str | None:
    """The model id a node was embedded with, or None when it carries no stamp."""
    value = node.metadata.get(MODEL_ID_KEY)
    return str(value) if value else None


def stamped_pin(node: BaseNode) -> ModelPin | None:
    """The exact version a node was embedded with, or None when its stamp is missing or names no version."""
    model_id, name, version = (node.metadata.get(key) for key in (MODEL_ID_KEY, MODEL_NAME_KEY, MODEL_VERSION_KEY))
    if not (model_id and name and version):
        return None
    return ModelPin(model_id=str(model_id), model_name=str(name), version=str(version))


def _hide_stamp_keys(node: BaseNode) -> None:
    for excluded in (node.excluded_embed_metadata_keys, node.excluded_llm_metadata_keys):
        excluded.extend(key for key in STAMP_KEYS if key not in excluded)


def stamp_node(node: BaseNode, served_by: ServedBy) -> None:
    """Record which model made the node's embedding, hidden from the embed and LLM metadata views."""
    _hide_stamp_keys(node)
    node.metadata[MODEL_ID_KEY] = served_by.model_id
    node.metadata[MODEL_VERSION_KEY] = served_by.version
    node.metadata[MODEL_NAME_KEY] = served_by.model_name


def _embed_texts_of(nodes: Sequence[BaseNode]) -> list[str]:
    # Exclude the stamp keys before reading the text, so a first embedding and a re-embedding see the
    # same text whether or not the node was stamped before.
    for node in nodes:
        _hide_stamp_keys(node)
    return [node.get_content(metadata_mode=MetadataMode.EMBED) for node in nodes]


def _apply(nodes: Sequence[BaseNode], result: EmbedResult) -> None:
    if result.count != len(nodes):
        raise RagFactoryError(f"the sidecar returned {result.count} vectors for {len(nodes)} nodes")
    for node, vector in zip(nodes, result.vectors.tolist(), strict=True):
        node.embedding = vector
        stamp_node(node, result.served_by)


def embed_nodes(nodes: Sequence[BaseNode], embed_model: RagFactoryEmbedding) -> Sequence[BaseNode]:
    """Set ``node.embedding`` for every node and stamp it with the serving model's id and version.

    All nodes are embedded by one model: if an unpinned A/B test splits the batches between models,
    nothing is changed and ``FailedPreconditionError`` is raised (set ``routing_key`` to pin an arm).

    Args:
        nodes: The nodes; their embed-mode content is embedded.
        embed_model: The sidecar-backed embedding.

    Returns:
        The same nodes, embedded and stamped.

    Raises:
        RagFactoryError: The mapped error of the sidecar.
    """
    if nodes:
        _apply(nodes, embed_model.embed_texts(_embed_texts_of(nodes)))
    return nodes


async def aembed_nodes(nodes: Sequence[BaseNode], embed_model: RagFactoryEmbedding) -> Sequence[BaseNode]:
    """Async twin of :func:`embed_nodes`."""
    if nodes:
        _apply(nodes, await embed_model.aembed_texts(_embed_texts_of(nodes)))
    return nodes


def find_stale_nodes(nodes: Sequence[BaseNode], current_model_id: str) -> list[BaseNode]:
    """Nodes whose embedding was not made by ``current_model_id``.

    Unstamped nodes count as stale: nothing says which vector space they are in.
    """
    return [node for node in nodes if stamped_model_id(node) != current_model_id]


def reembed_stale_nodes(nodes: Sequence[BaseNode], embed_model: RagFactoryEmbedding) -> int:
    """Re-embed and restamp the nodes embedded by a model other than the one ``embed_model`` resolves to now.

    Nodes already stamped with the current model are left untouched. Re-insert the returned nodes into
    vector stores that keep their own copy of the vectors.

    Args:
        nodes: The nodes of an index.
        embed_model: The sidecar-backed embedding; its ``model`` reference is resolved to a model id first.

    Returns:
        How many nodes were re-embedded.

    Raises:
        FailedPreconditionError: Another model than the resolved one served the re-embedding (a fallback
            or an A/B arm); the nodes are left unchanged.
        RagFactoryError: The mapped error of the sidecar.
    """
    current = embed_model.current_model_id()
    stale = find_stale_nodes(nodes, current)
    if not stale:
        return 0
    result = embed_model.embed_texts(_embed_texts_of(stale))
    if result.model_id != current:
        raise FailedPreconditionError(
            f"asked to re-embed with {current!r} but {result.model_id!r} served the call "
            f"(fallback: {result.fallback}); the {len(stale)} stale nodes were left unchanged",
            model_id=current,
        )
    _apply(stale, result)
    return len(stale)


def assert_single_vector_space(nodes: Sequence[BaseNode]) -> str | None:
    """Check that every node was embedded by the same model.

    Returns:
        That model id, or None when there are no nodes or none is stamped.

    Raises:
        FailedPreconditionError: Nodes carry different model ids, or some carry none; re-embed them with
            :func:`reembed_stale_nodes`.
    """
    counts = Counter(stamped_model_id(node) or "<unstamped>" for node in nodes)
    if len(counts) > 1:
        found = ", ".join(f"{model_id} ({n} nodes)" for model_id, n in counts.most_common())
        raise FailedPreconditionError(
            f"the nodes mix vector spaces: {found}; call reembed_stale_nodes() before indexing them together"
        )
    return next((model_id for model_id in counts if model_id != "<unstamped>"), None)
