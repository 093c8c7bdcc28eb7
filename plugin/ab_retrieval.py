"""A/B retrieval in a LlamaIndex app: one index per arm, each query searched in the index of the model that served it.

An experiment on ``minilm@production`` routes a share of the alias's queries to a candidate model. The
candidate's query vectors live in another vector space, so they must be searched in an index of the
candidate's own document vectors. :class:`ABRetriever` holds one :class:`~plugin.pinned_index.PinnedIndex`
per arm: it asks the sidecar to embed the query through the alias (the sidecar picks the arm), searches the
index of the model named by ``served_by.model_id`` with that very vector, and returns the nodes with the
request id and the arm, so feedback can be recorded for the arm that served.

A query never meets an index of another model. When the served model has no ready index here (the sidecar
fell back to its default model, or someone started an experiment whose candidate was never indexed), the
query is embedded again by the serving arm's exact version and the route says ``fallback``.
"""

from __future__ import annotations

import contextvars
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.base.response.schema import RESPONSE_TYPE
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.core.schema import NodeWithScore, QueryBundle

from plugin.experiments import Experiment, ExperimentsClient
from plugin.pinned_index import PinnedIndex
from plugin.pinning import check_same_pin
from plugin.versioning import stamped_model_id
from rag_factory.errors import FailedPreconditionError, InvalidArgumentError

ROUTE_METADATA_KEY = "rag_factory"
"""Key of the route in a query engine response's ``metadata``."""


@dataclass(frozen=True)
class Route:
    """Which model answered one query, and so which index was searched."""

    request_id: str  # report feedback for this query with it (RecordOutcome)
    arm: str  # "control", "candidate", or "" when no experiment routed the query
    model_id: str  # the model whose index was searched
    version: str
    experiment: str
    fallback: bool  # the routed model could not answer; the serving model's index answered instead
    fallback_reason: str

    def as_metadata(self) -> dict[str, Any]:
        """The route as plain values, for a response's metadata."""
        return asdict(self)


@dataclass(frozen=True)
class RoutedNodes:
    """The results of one query and the route that produced them."""

    nodes: list[NodeWithScore]
    route: Route


def _alias_of(model: str) -> tuple[str, str]:
    name, _, alias = model.partition("@")
    if not name:
        raise InvalidArgumentError("the A/B retriever needs the model reference under test, e.g. 'minilm@production'")
    return name, alias or "production"


class ABRetriever(BaseRetriever):
    """A LlamaIndex retriever over one pinned index per A/B arm; the sidecar routes each query.

    Example:
        >>> serving = build_pinned_index(nodes, RagFactoryEmbedding(address=addr, model="minilm@production"))
        >>> retriever = ABRetriever(serving, model="minilm@production", similarity_top_k=10)
        >>> candidate = build_pinned_index(nodes, RagFactoryEmbedding(address=addr, model="minilm@2.0.0"))
        >>> retriever.start_experiment("ft-vs-base", candidate, steps=[0.1, 0.5, 1.0])
        >>> routed = retriever.retrieve_routed("does aspirin lower fever?", routing_key="user-42")
        >>> retriever.record_feedback(routed.route, clicked_rank=2)
    """

    def __init__(
        self,
        serving: PinnedIndex,
        *,
        model: str,
        similarity_top_k: int = 10,
        routing_key: str = "",
        **kwargs: Any,
    ) -> None:
        """Serve ``model`` (the alias under test) from ``serving``, the index of the version it names now.

        Args:
            serving: The index queries are answered from when no experiment routes them elsewhere.
            model: The reference whose traffic experiments split, e.g. ``minilm@production``.
            similarity_top_k: Results per query.
            routing_key: Default stable key pinning a user to an arm ("" routes each query at random).
            **kwargs: Passed to LlamaIndex's ``BaseRetriever`` (``callback_manager``, ``verbose``).
        """
        if not serving.ready:
            raise FailedPreconditionError("the serving index is not ready: finish its build first")
        super().__init__(**kwargs)
        self.model_name, self.alias = _alias_of(model)
        self.model = model
        self.similarity_top_k = similarity_top_k
        self.routing_key = routing_key
        self.experiment: str = ""
        self._serving = serving
        self._arms: dict[str, PinnedIndex] = {serving.pin.model_id: serving}
        self._retired: PinnedIndex | None = None
        self._client = serving.embed_model.client
        self._experiments = ExperimentsClient(self._client)
        self._last_route: contextvars.ContextVar[Route | None] = contextvars.ContextVar("route", default=None)

    # -- arms -------------------------------------------------------------------------------------

    @property
    def serving(self) -> PinnedIndex:
        """The index answering queries that no experiment routes elsewhere."""
        return self._serving

    @property
    def arms(self) -> Mapping[str, PinnedIndex]:
        """The ready index of each model that may answer, by model id."""
        return dict(self._arms)

    def add_arm(self, index: PinnedIndex) -> None:
        """Let queries served by ``index``'s model be searched in it.

        Raises:
            FailedPreconditionError: Its build is unfinished (a shadow index that failed half-way).
        """
        if not index.ready:
            raise FailedPreconditionError(
                f"the index of {index.pin} is not ready: resume its build (build_pinned_index with the same "
                f"checkpoint and vector store) before any traffic is routed to it"
            )
        self._arms[index.pin.model_id] = index

    def start_experiment(
        self, name: str, candidate: PinnedIndex, *, steps: tuple[float, ...] | list[float] = (), **plan: Any
    ) -> Experiment:
        """Start an experiment on ``model`` once the candidate's index is ready; only then is traffic routed.

        Args:
            name: Unique experiment name.
            candidate: The candidate's shadow index, built with its exact version.
            steps: Traffic shares to the candidate, rising to 1.0 (see ab.proto for the default).
            **plan: ``min_samples_per_step``, ``min_step_duration_s``, ``max_error_rate``, ``minimum_samples``.

        Raises:
            FailedPreconditionError: The candidate's index is not ready.
            RagFactoryError: The mapped error of the sidecar (a duplicate name, an unknown candidate, ...).
        """
        self.add_arm(candidate)
        experiment = self._experiments.start(
            name,
            model_name=self.model_name,
            alias=self.alias,
            candidate=candidate.pin.reference,
            steps=steps,
            **plan,
        )
        self.experiment = name
        return experiment

    def sync(self) -> Experiment | None:
        """Follow the experiment: after a promotion the candidate's index serves; after a rollback it is dropped.

        On promotion the previous serving index is kept as :attr:`retired` (a rollback after promotion moves
        the alias back to it) until :meth:`release_retired`.
        """
        if not self.experiment:
            return None
        experiment = self._experiments.get(self.experiment)
        control = self._arms.get(experiment.control_model_id)
        candidate = self._arms.get(experiment.candidate_model_id)
        if experiment.status == "promoted" and candidate is not None and candidate is not self._serving:
            self._retired = self._serving
            self._serving = candidate
            self._arms = {candidate.pin.model_id: candidate}
        elif experiment.status in ("rolled_back", "stopped"):
            if control is None and self._retired is not None:  # rolled back after a promotion
                control = self._retired
                self._retired = None
            if control is not None:
                self._serving = control
                self._arms = {control.pin.model_id: control}
        return experiment

    @property
    def retired(self) -> PinnedIndex | None:
        """The index that served before the last promotion, kept in case of a rollback."""
        return self._retired

    def release_retired(self) -> PinnedIndex | None:
        """Forget the index that served before the last promotion (delete its vector store yourself)."""
        retired, self._retired = self._retired, None
        return retired

    # -- retrieval --------------------------------------------------------------------------------

    @property
    def last_route(self) -> Route | None:
        """The route of the latest query in this thread or task."""
        return self._last_route.get()

    def retrieve_routed(self, query: str | QueryBundle, routing_key: str | None = None) -> RoutedNodes:
        """Route one query through the sidecar and search the index of the model that served it.

        Raises:
            FailedPreconditionError: The searched index holds nodes of another model (a mixed index).
            RagFactoryError: The mapped error of the sidecar when no model could embed the query.
        """
        bundle = QueryBundle(query) if isinstance(query, str) else query
        key = self.routing_key if routing_key is None else routing_key
        # allow_fallback is safe here: whichever model answers, its own index is searched.
        result = self._client.embed([bundle.query_str], model=self.model, routing_key=key, allow_fallback=True)
        served = result.served_by
        arm = self._arms.get(served.model_id)
        vector = result.vectors[0]
        fallback, reason = served.fallback, served.fallback_reason
        if arm is None:
            arm = self._serving
            fallback, reason = True, f"no ready index here for {served.model_id!r}; answered by {arm.pin}"
            again = arm.embed_model.embed_texts([bundle.query_str])
            # An embedding built with allow_fallback=True may itself have been answered by another model.
            check_same_pin(arm.pin, again.model_id, "the query vector")
            vector = again.vectors[0]
        searched = QueryBundle(query_str=bundle.query_str, embedding=vector.tolist(), custom_embedding_strs=None)
        nodes = arm.index.as_retriever(similarity_top_k=self.similarity_top_k).retrieve(searched)
        for node in nodes:
            found = stamped_model_id(node.node)
            if found is not None:
                check_same_pin(arm.pin, found, f"node {node.node.node_id!r} of the searched index")
        route = Route(
            request_id=result.request_ids[0],
            arm=served.variant,
            model_id=arm.pin.model_id,
            version=arm.pin.version,
            experiment=served.experiment,
            fallback=fallback,
            fallback_reason=reason,
        )
        self._last_route.set(route)
        return RoutedNodes(nodes=nodes, route=route)

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return self.retrieve_routed(query_bundle).nodes

    # -- feedback ---------------------------------------------------------------------------------

    def record_feedback(
        self,
        route: Route | RESPONSE_TYPE | str,
        *,
        clicked_rank: int = 0,
        metrics: Mapping[str, float] | None = None,
    ) -> tuple[str, str]:
        """Report what the user did with a query's results: the arm that served it gets the outcome.

        Args:
            route: The query's :class:`Route`, a query engine response carrying it, or its request id.
            clicked_rank: 1-based rank of the result the user clicked; 0 for no click.
            metrics: Further judgements, e.g. ``{"relevant@1": 1.0}``.

        Returns:
            The experiment and the model id the outcome was recorded for.

        Raises:
            RagFactoryError: The sidecar refused it (no experiment routed the request, a late outcome, ...).
        """
        return self._experiments.record_outcome(_request_id_of(route), clicked_rank=clicked_rank, metrics=metrics)


def _request_id_of(route: Route | RESPONSE_TYPE | str) -> str:
    if isinstance(route, str):
        return route
    if isinstance(route, Route):
        return route.request_id
    metadata = route.metadata or {}
    if ROUTE_METADATA_KEY not in metadata:
        raise InvalidArgumentError("this response was not produced by an A/B query engine: it carries no route")
    return str(metadata[ROUTE_METADATA_KEY]["request_id"])


class ABQueryEngine(RetrieverQueryEngine):
    """A ``RetrieverQueryEngine`` over an :class:`ABRetriever` whose responses carry the route in their metadata."""

    @classmethod
    def over(cls, retriever: ABRetriever, **kwargs: Any) -> ABQueryEngine:
        """An engine over ``retriever``; ``kwargs`` go to ``RetrieverQueryEngine.from_args`` (llm, response_mode...)."""
        engine = RetrieverQueryEngine.from_args(retriever, **kwargs)
        return cls(
            retriever=retriever,
            response_synthesizer=engine._response_synthesizer,
            node_postprocessors=engine._node_postprocessors,
            callback_manager=engine.callback_manager,
        )

    def _attach(self, response: RESPONSE_TYPE) -> RESPONSE_TYPE:
        retriever = self._retriever
        if isinstance(retriever, ABRetriever) and retriever.last_route is not None:
            response.metadata = {**(response.metadata or {}), ROUTE_METADATA_KEY: retriever.last_route.as_metadata()}
        return response

    def _query(self, query_bundle: QueryBundle) -> RESPONSE_TYPE:
        return self._attach(super()._query(query_bundle))

    async def _aquery(self, query_bundle: QueryBundle) -> RESPONSE_TYPE:
        return self._attach(await super()._aquery(query_bundle))
