"""The thin client of the rag-factory sidecar: a gRPC client, a LlamaIndex embedding, pinned indexes, A/B retrieval."""

from __future__ import annotations

from plugin.ab_retrieval import ROUTE_METADATA_KEY, ABQueryEngine, ABRetriever, Route, RoutedNodes
from plugin.client import (
    MAX_BATCH_TEXTS,
    Encoding,
    RagFactoryClient,
    build_embed_request,
)
from plugin.errors import error_from_rpc
from plugin.experiments import Experiment, ExperimentsClient
from plugin.llama_index_embedding import RagFactoryEmbedding
from plugin.pinned_index import PinnedIndex, build_pinned_index
from plugin.pinning import ModelPin
from plugin.results import (
    EmbedResult,
    ServedBy,
    Timings,
)
from plugin.versioning import (
    MODEL_ID_KEY,
    MODEL_NAME_KEY,
    MODEL_VERSION_KEY,
    aembed_nodes,
    assert_single_vector_space,
    embed_nodes,
    find_stale_nodes,
    reembed_stale_nodes,
    stamped_model_id,
    stamped_pin,
)

__all__ = [
    "MAX_BATCH_TEXTS",
    "MODEL_ID_KEY",
    "MODEL_NAME_KEY",
    "MODEL_VERSION_KEY",
    "ROUTE_METADATA_KEY",
    "ABQueryEngine",
    "ABRetriever",
    "EmbedResult",
    "Encoding",
    "Experiment",
    "ExperimentsClient",
    "ModelPin",
    "PinnedIndex",
    "RagFactoryClient",
    "RagFactoryEmbedding",
    "Route",
    "RoutedNodes",
    "ServedBy",
    "Timings",
    "aembed_nodes",
    "assert_single_vector_space",
    "build_embed_request",
    "build_pinned_index",
    "embed_nodes",
    "error_from_rpc",
    "find_stale_nodes",
    "reembed_stale_nodes",
    "stamped_model_id",
    "stamped_pin",
]
