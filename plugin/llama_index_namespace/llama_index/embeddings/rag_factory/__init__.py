"""``llama_index.embeddings.rag_factory``: the rag-factory embedding under LlamaIndex's usual import path."""

from __future__ import annotations

from plugin.llama_index_embedding import RagFactoryEmbedding

__all__ = ["RagFactoryEmbedding"]
