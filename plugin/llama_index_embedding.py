"""``RagFactoryEmbedding``: a LlamaIndex ``BaseEmbedding`` served by the rag-factory sidecar over gRPC."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import pluggy
from llama_index.core.base.embeddings.base import BaseEmbedding, Embedding
from llama_index.core.schema import BaseNode
from pydantic import Field, PrivateAttr

from plugin import index_stamping
from plugin.client import MAX_BATCH_TEXTS, Encoding, RagFactoryClient
from plugin.pinning import ModelPin, explain_unusable_pin
from plugin.results import EmbedResult, ServedBy
from plugin.versioning import aembed_nodes, assert_single_vector_space, embed_nodes, stamped_pin
from rag_factory.errors import FailedPreconditionError, RagFactoryError
from rag_factory.hooks.events import EmbeddingEvent
from rag_factory.hooks.manager import build_plugin_manager, notify_safely

# VectorStoreIndex embeds nodes through helpers that never show the model the nodes; see the module.
index_stamping.install()


class RagFactoryEmbedding(BaseEmbedding):
    """Embeddings from a model served by the sidecar, stamped with the model id and version that served them.

    Nothing connects at import or construction; the gRPC channels open on the first embedding call.

    **Pinned to one version.** On first use the ``model`` reference (an alias such as ``minilm@production``,
    a bare name, or "" for the default model) is resolved to one exact version, and every later call, for
    documents and for queries, asks for that exact version (``name@1.2.0``), which no alias move and no A/B
    experiment redirects. An index built with this object is therefore always queried in its own vector
    space. Moving to a new version is explicit: :meth:`repinned` gives an embedding pinned to what the
    reference names now; re-embed the index with it (:func:`plugin.build_pinned_index`), then switch.

    Whatever LlamaIndex path embeds nodes with it (``VectorStoreIndex.from_documents``,
    ``VectorStoreIndex(nodes)``, ``insert``, an ``IngestionPipeline`` step, and their async twins), each
    node's metadata is stamped with the model id and version, see :mod:`plugin.versioning`.

    Example:
        >>> embed_model = RagFactoryEmbedding(address="127.0.0.1:50051", model="minilm@production")
        >>> index = VectorStoreIndex(nodes, embed_model=embed_model)
    """

    address: str = Field(description="HOST:PORT of the rag-factory sidecar.")
    model: str = Field(default="", description="Model reference; empty means the sidecar's default model.")
    routing_key: str = Field(default="", description="Stable key pinning an A/B arm; empty means random routing.")
    domain: str = Field(default="", description="Domain of the texts, passed to the sidecar's preprocessing hooks.")
    pin_version: bool = Field(
        default=True,
        description=(
            "Resolve `model` to one exact version on first use and ask for that version ever after. False "
            "follows the reference on every call (alias moves, A/B routing): search `last_served_by.model_id`."
        ),
    )
    allow_fallback: bool = Field(
        default=False,
        description=(
            "Let the sidecar's default model answer when `model` fails. Its vectors are of another vector "
            "space: search the index of `last_served_by.model_id`. False raises FallbackRefusedError instead."
        ),
    )
    dimensions: int | None = Field(
        default=None,
        ge=1,
        description=(
            "Matryoshka truncation: keep the first `dimensions` values of each vector, re-normalised (None: all). "
            "Build and query an index with the same value: it is part of the vector space."
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
    _pin: ModelPin | None = PrivateAttr(default=None)
    _pin_lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

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

    @classmethod
    def for_nodes(cls, nodes: Sequence[BaseNode], **fields: Any) -> RagFactoryEmbedding:
        """An embedding pinned to the version the nodes' stamps name: to query an index reopened from storage.

        Args:
            nodes: Nodes of the index (all stamped by one model).
            **fields: The other fields (``address`` at least); ``model`` is taken from the stamps.

        Raises:
            FailedPreconditionError: The nodes mix models, or carry no stamp.
        """
        assert_single_vector_space(nodes)
        pin = stamped_pin(nodes[0]) if nodes else None
        if pin is None:
            raise FailedPreconditionError("the nodes carry no rag-factory stamp, so nothing says which model made them")
        embedding = cls(**{**fields, "model": pin.reference})
        embedding._pin = pin
        return embedding

    def pinned_model(self) -> ModelPin:
        """The exact version this embedding asks for, resolved from ``model`` on first use.

        Raises:
            FailedPreconditionError: ``pin_version`` is False, so no version is pinned.
            RagFactoryError: The sidecar cannot resolve ``model`` (unknown, deprecated, unreachable).
        """
        if not self.pin_version:
            raise FailedPreconditionError("pin_version is False: this embedding follows its model reference")
        with self._pin_lock:
            if self._pin is None:
                self._pin = ModelPin.from_info(self.client.model_info(self.model))
            return self._pin

    def repinned(self) -> RagFactoryEmbedding:
        """A copy pinned to the version ``model`` names now, to re-embed an index after an alias moved."""
        fresh = self.model_copy()
        fresh._pin = None
        fresh._pin_lock = threading.Lock()
        fresh._last_served_by = None
        fresh.pinned_model()
        return fresh

    def current_model_id(self) -> str:
        """Id of the model version this embedding's vectors come from: the pinned one, or the reference's now."""
        if self.pin_version:
            return self.pinned_model().model_id
        return self.client.model_info(self.model).model_id

    def embed_texts(self, texts: Sequence[str]) -> EmbedResult:
        """Embed texts in batches of ``embed_batch_size``, keeping who served them.

        Raises:
            RagFactoryError: The mapped error of the sidecar, see :meth:`RagFactoryClient.embed`.
        """
        options = self._request_options()
        try:
            result = self.client.embed_batched(texts, batch_size=self.embed_batch_size, **options)
        except RagFactoryError as exc:
            raise self._explained(exc) from exc
        return self._observed(result)

    async def aembed_texts(self, texts: Sequence[str]) -> EmbedResult:
        """Async twin of :meth:`embed_texts`."""
        options = self._request_options()
        try:
            result = await self.client.aembed_batched(texts, batch_size=self.embed_batch_size, **options)
        except RagFactoryError as exc:
            raise self._explained(exc) from exc
        return self._observed(result)

    def _explained(self, error: RagFactoryError) -> RagFactoryError:
        if self.pin_version and self._pin is not None:
            return explain_unusable_pin(self._pin, error)
        return error

    def _request_options(self) -> dict[str, Any]:
        return {
            # The pin's name@version: never A/B routed, never moved by an alias (resolving it once also lets
            # errors name the model id when ``model`` was an exact version already).
            "model": self.pinned_model().reference if self.pin_version else self.model,
            "routing_key": self.routing_key,
            "domain": self.domain,
            "allow_fallback": self.allow_fallback,
            "dimensions": self.dimensions,
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
