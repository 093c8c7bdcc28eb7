"""A/B routing inside the engine: requests for an alias under test go to A or B by routing key."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from rag_factory.errors import FailedPreconditionError, InvalidArgumentError, NotFoundError
from rag_factory.experiments.arms import arm_of, arm_of_served_variant, served_variant
from rag_factory.experiments.limits import (
    ERROR_METRIC,
    LATENCY_METRIC,
    check_client_metrics,
    check_new_metric_names,
    check_request_id,
    is_valid_request_id,
)
from rag_factory.experiments.rollout import RolloutManager
from rag_factory.experiments.store import RequestAssignment
from rag_factory.models.embedding.registry import PRODUCTION
from rag_factory.models.embedding.versions import is_version
from rag_factory.serving.engine import EmbedCall, EmbedOutcome, Route

logger = logging.getLogger(__name__)


def alias_target(model: str) -> tuple[str, str] | None:
    """``(name, alias)`` for ``name@alias`` or a bare ``name`` (its production alias); None otherwise."""
    name, _, alias = model.partition("@")
    if not alias:
        return name, PRODUCTION
    if is_version(alias):
        return None
    return name, alias


def online_metrics(clicked_rank: int, k: int = 5) -> dict[str, float]:
    """Engagement metrics of one result list from the rank of the clicked document (0 = no click).

    ``engagement`` is 1 for any click; ``ctr@k`` is 1 when the click was within the top ``k``;
    ``mrr_clicked`` is 1/rank of the click (0 without one).
    """
    if clicked_rank < 0:
        raise InvalidArgumentError(f"clicked_rank must be 0 (no click) or a 1-based rank, got {clicked_rank}")
    return {
        "engagement": float(clicked_rank > 0),
        f"ctr@{k}": float(0 < clicked_rank <= k),
        "mrr_clicked": 1.0 / clicked_rank if clicked_rank else 0.0,
    }


class ABRouter:
    """Routes by experiment and records each routed request's latency and errors for its arm."""

    def __init__(self, rollouts: RolloutManager) -> None:
        self.rollouts = rollouts

    def route(self, model: str, routing_key: str) -> Route:
        """Pick A or B when ``model`` names an alias under test; otherwise serve ``model`` itself."""
        target = alias_target(model)
        state = self.rollouts.active_for(*target) if target else None
        if state is None:
            return Route(model)
        try:
            use_b = self.rollouts.framework.should_use_model_b(state.test_name, routing_key or None)
        except NotFoundError:  # stopped by another process since the last reload
            return Route(model)
        arm = arm_of(use_b)
        return Route(state.model_for(arm), served_variant(arm), state.test_name)

    def on_served(self, outcome: EmbedOutcome, call: EmbedCall) -> None:
        """Engine listener: latency and error (a fallback means the arm's model failed) per arm.

        A failed request that no fallback answered reaches :meth:`on_failed` instead.
        """
        served = outcome.served_by
        arm = arm_of_served_variant(served.variant)
        if not served.experiment or arm is None:
            return
        try:
            state = self.rollouts.state(served.experiment)
        except NotFoundError:
            return
        model_id = state.model_for(arm)
        # The assignment is stored first: the response carries the experiment's name, so a client
        # reporting its outcome must get "experiment ended" rather than "never served" when the
        # rollout stops the experiment between routing and this call. A client-chosen id that is
        # not a valid request id is not stored (RecordOutcome refuses it anyway): a megabyte id
        # must not grow the database. The request's latency still counts.
        if is_valid_request_id(outcome.request_id):
            assignment = RequestAssignment(
                request_id=outcome.request_id, test_name=served.experiment, arm=arm, model_id=model_id
            )
            if not self.rollouts.store.assign_request(assignment):
                logger.debug("request id %s was already assigned; the first assignment stands", outcome.request_id)
        try:
            self.rollouts.framework.record_result(
                served.experiment, model_id, {LATENCY_METRIC: outcome.total_ms, ERROR_METRIC: float(served.fallback)}
            )
        except (NotFoundError, FailedPreconditionError):
            logger.debug("experiment %s ended while request %s was served", served.experiment, outcome.request_id)

    def on_failed(self, route: Route, call: EmbedCall) -> None:
        """Engine failure listener: an arm whose model failed, with no fallback answering, counts an error."""
        arm = arm_of_served_variant(route.variant)
        if not route.experiment or arm is None:
            return
        try:
            model_id = self.rollouts.state(route.experiment).model_for(arm)
            self.rollouts.framework.record_result(route.experiment, model_id, {ERROR_METRIC: 1.0})
        except (NotFoundError, FailedPreconditionError):
            logger.debug("experiment %s ended while a request for %s failed", route.experiment, route.model)

    def record_outcome(self, request_id: str, metrics: Mapping[str, float]) -> RequestAssignment:
        """Record client-reported outcomes (engagement, accuracy, ...) for the arm that served a request.

        Each request counts once, and only with metrics the client can know: see
        :mod:`rag_factory.experiments.limits` for the bounds.

        Raises:
            InvalidArgumentError: A bad request id; a server-measured metric (``latency_ms``,
                ``error``); a bad metric name, too many metrics, or a value that is not finite or
                is out of bounds. Nothing is recorded.
            NotFoundError: The request id was not routed by any experiment.
            AlreadyExistsError: An outcome for this request id was already recorded; nothing is recorded.
            FailedPreconditionError: The experiment that routed it has ended; nothing is recorded.
        """
        check_request_id(request_id)
        checked = check_client_metrics(metrics)
        assignment = self.rollouts.store.find_request(request_id)
        if assignment is None:
            raise NotFoundError(
                f"request id {request_id!r} was not served by an A/B experiment (or is too old); "
                "report outcomes with the request_id of an embedding response",
                request_id=request_id,
            )
        try:
            known = self.rollouts.store.load_results(assignment.test_name).metrics
            check_new_metric_names(checked, known)
            self.rollouts.framework.record_result(
                assignment.test_name, assignment.model_id, checked, request_id=request_id
            )
        except FailedPreconditionError as exc:
            raise FailedPreconditionError(
                f"request {request_id!r} was served by A/B test {assignment.test_name!r}, which has ended; "
                "outcomes that arrive after the decision are not recorded",
                request_id=request_id,
                test_name=assignment.test_name,
            ) from exc
        return assignment
