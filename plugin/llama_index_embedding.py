"""``RagFactoryEmbedding``: a LlamaIndex ``BaseEmbedding`` served by the rag-factory sidecar over gRPC."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pluggy
from llama_index.core.base.embeddings.base import BaseEmbedding, Embedding
from llama_index.core.schema import BaseNode
from pydantic import Field, PrivateAttr

from plugin.client import MAX_BATCH_TEXTS, Encoding, RagFactoryClient
from plugin.results import EmbedResult, ServedBy
from plugin.versioning import aembed_nodes, embed_nodes
from rag_factory.hooks.events import EmbeddingEvent
from rag_factory.hooks.manager import build_plugin_manager, notify_safely


class RagFactoryEmbedding(BaseEmbedding):
    """Embeddings from a model served by the sidecar, stamped with the model id and version that served them.

    Nothing connects at import or construction; the gRPC channels open on the first embedding call.
    Used as a transformation (for example the last step of an ``IngestionPipeline``), it also stamps
    each node's metadata with the model id and version, see :mod:`plugin.versioning`.

    Example:
        >>> embed_model = RagFactoryEmbedding(address="127.0.0.1:50051", model="minilm@production")
        >>> index = VectorStoreIndex(nodes, embed_model=embed_model)
    """

    address: str = Field(description="HOST:PORT of the rag-factory sidecar.")
    model: str = Field(default="", description="Model reference; empty means the sidecar's default model.")
    routing_key: str = Field(default="", description="Stable key pinning an A/B arm; empty means random routing.")
    domain: str = Field(default="", description="Domain of the texts, passed to the sidecar's preprocessing hooks.")
    allow_fallback: bool = Field(
        default=False,
        description=(
            "Let the sidecar's default model answer when `model` fails. Its vectors are of another vector "
            "space: search the index of `last_served_by.model_id`. False raises FallbackRefusedError instead."
        ),
    )
    timeout_s: float = Field(default=10.0, gt=0, description="Deadline of each gRPC call, in seconds.")
    encoding: Encoding = Field(default="packed", description="Vector encoding on the wire: 'packed' or 'repeated'.")
    load_plugins: bool = Field(
        default=True, description="Load rag_factory hook plugins from entry points on the first call."
    )
    model_name: str = Field(default="rag-factory", description="Name reported to LlamaIndex instrumentation.")
    embed_batch_size: int = Field(
        default=64, gt=0, le=MAX_BATCH_TEXTS, description="Texts per gRPC request (the sidecar takes at most 256)."
    )

    _client: RagFactoryClient | None = PrivateAttr(default=None)
    _plugin_manager: pluggy.PluginManager | None = PrivateAttr(default=None)
    _last_served_by: ServedBy | None = PrivateAttr(default=None)

    @classmethod
    def class_name(cls) -> str:
        """Name LlamaIndex uses when it serialises this component."""
        return "RagFactoryEmbedding"

    @property
    def client(self) -> RagFactoryClient:
        """The gRPC client, made on first use (making it opens no connection either)."""
        if self._client is None:
            self._client = RagFactoryClient(self.address, timeout_s=self.timeout_s, encoding=self.encoding)
        return self._client

    @property
    def plugin_manager(self) -> pluggy.PluginManager:
        """The client-side plugin manager, built on first use so plugins installed by then are found."""
        if self._plugin_manager is None:
            self._plugin_manager = build_plugin_manager(side="plugin", load_entry_points=self.load_plugins)
        return self._plugin_manager

    @property
    def last_served_by(self) -> ServedBy | None:
        """Model id, version and A/B variant of the latest call (None before the first)."""
        return self._last_served_by

    def current_model_id(self) -> str:
        """Id of the model version the sidecar resolves ``model`` to right now."""
        return self.client.model_info(self.model).model_id

    def embed_texts(self, texts: Sequence[str]) -> EmbedResult:
        """Embed texts in batches of ``embed_batch_size``, keeping who served them.

        Raises:
            RagFactoryError: The mapped error of the sidecar, see :meth:`RagFactoryClient.embed`.
        """
        result = self.client.embed_batched(texts, batch_size=self.embed_batch_size, **self._request_options())
        return self._observed(result)

    async def aembed_texts(self, texts: Sequence[str]) -> EmbedResult:
        """Async twin of :meth:`embed_texts`."""
        result = await self.client.aembed_batched(texts, batch_size=self.embed_batch_size, **self._request_options())
        return self._observed(result)

    def _request_options(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "routing_key": self.routing_key,
            "domain": self.domain,
            "allow_fallback": self.allow_fallback,
        }

    def _observed(self, result: EmbedResult) -> EmbedResult:
        served = result.served_by
        self._last_served_by = served
        notify_safely(
            self.plugin_manager.hook.rag_factory_on_embedding,
            event=EmbeddingEvent(
                side="plugin",
                model_id=served.model_id,
                version=served.version,
                variant=served.variant,
                latency_ms=result.latency_ms,
                count=result.count,
                request_id=",".join(result.request_ids),
                experiment=served.experiment,
                fallback=served.fallback,
                requested_model=self.model,
            ),
        )
        return result

    # -- BaseEmbedding ----------------------------------------------------------------------------

    def _get_query_embedding(self, query: str) -> Embedding:
        return self._get_text_embeddings([query])[0]

    async def _aget_query_embedding(self, query: str) -> Embedding:
        return (await self._aget_text_embeddings([query]))[0]

    def _get_text_embedding(self, text: str) -> Embedding:
        return self._get_text_embeddings([text])[0]

    async def _aget_text_embedding(self, text: str) -> Embedding:
        return (await self._aget_text_embeddings([text]))[0]

    def _get_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        vectors: list[Embedding] = self.embed_texts(texts).vectors.tolist()
        return vectors

    async def _aget_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        vectors: list[Embedding] = (await self.aembed_texts(texts)).vectors.tolist()
        return vectors

    # -- TransformComponent: embedding nodes stamps them --------------------------------------------

    def __call__(self, nodes: Sequence[BaseNode], **kwargs: Any) -> Sequence[BaseNode]:
        return embed_nodes(nodes, self)

    async def acall(self, nodes: Sequence[BaseNode], **kwargs: Any) -> Sequence[BaseNode]:
        return await aembed_nodes(nodes, self)
