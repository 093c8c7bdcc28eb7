"""The thin client of the rag-factory sidecar: a gRPC client, a LlamaIndex embedding and version stamps."""

from __future__ import annotations

from plugin.client import (
    MAX_BATCH_TEXTS,
    Encoding,
    RagFactoryClient,
    build_embed_request,
)
from plugin.errors import error_from_rpc
from plugin.llama_index_embedding import RagFactoryEmbedding
from plugin.results import (
    EmbedResult,
    ServedBy,
    Timings,
)
from plugin.versioning import (
    MODEL_ID_KEY,
    MODEL_VERSION_KEY,
    aembed_nodes,
    assert_single_vector_space,
    embed_nodes,
    find_stale_nodes,
    reembed_stale_nodes,
    stamped_model_id,
)

__all__ = [
    "MAX_BATCH_TEXTS",
    "MODEL_ID_KEY",
    "MODEL_VERSION_KEY",
    "EmbedResult",
    "Encoding",
    "RagFactoryClient",
    "RagFactoryEmbedding",
    "ServedBy",
    "Timings",
    "aembed_nodes",
    "assert_single_vector_space",
    "build_embed_request",
    "embed_nodes",
    "error_from_rpc",
    "find_stale_nodes",
    "reembed_stale_nodes",
    "stamped_model_id",
]
