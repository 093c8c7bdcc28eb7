"""The A/B calls a client application makes: start an experiment, follow it, report outcomes, roll back."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from plugin.client import RagFactoryClient, method_path
from rag_factory_contract.v1 import ab_pb2

ExperimentStatus = Literal["ramping", "promoted", "rolled_back", "stopped"]

_STATUS: dict[int, ExperimentStatus] = {
    ab_pb2.EXPERIMENT_STATUS_RAMPING: "ramping",
    ab_pb2.EXPERIMENT_STATUS_PROMOTED: "promoted",
    ab_pb2.EXPERIMENT_STATUS_ROLLED_BACK: "rolled_back",
    ab_pb2.EXPERIMENT_STATUS_STOPPED: "stopped",
}


def _path(method: str) -> str:
    return method_path(ab_pb2.DESCRIPTOR, "ABTestService", method)


_START = _path("StartExperiment")
_GET = _path("GetExperiment")
_RECORD = _path("RecordOutcome")
_RAMP = _path("RampExperiment")
_ROLLBACK = _path("RollbackExperiment")


@dataclass(frozen=True)
class Experiment:
    """Where an experiment stands, as the sidecar reports it."""

    name: str
    model_name: str
    alias: str
    control_model_id: str
    candidate_model_id: str
    traffic_split: float  # share of the alias's traffic going to the candidate now
    status: ExperimentStatus
    reason: str

    @classmethod
    def from_proto(cls, message: ab_pb2.Experiment) -> Experiment:
        """Read the contract's message."""
        return cls(
            name=message.name,
            model_name=message.model_name,
            alias=message.alias,
            control_model_id=message.model_a_id,
            candidate_model_id=message.model_b_id,
            traffic_split=message.traffic_split,
            status=_STATUS.get(message.status, "stopped"),
            reason=message.reason,
        )

    @property
    def finished(self) -> bool:
        """True once the experiment routes no more traffic by itself."""
        return self.status != "ramping"


class ExperimentsClient:
    """The ABTestService calls over a :class:`RagFactoryClient`'s channel, errors mapped the same way."""

    def __init__(self, client: RagFactoryClient) -> None:
        self.client = client

    def start(
        self,
        name: str,
        *,
        model_name: str,
        candidate: str,
        alias: str = "",
        steps: Sequence[float] = (),
        min_samples_per_step: int = 0,
        min_step_duration_s: float | None = None,
        max_error_rate: float | None = None,
        minimum_samples: int = 0,
    ) -> Experiment:
        """Start routing a share of ``model_name@alias`` to ``candidate`` (see ab.proto for the defaults).

        Raises:
            RagFactoryError: The mapped error of the sidecar (an experiment of that name exists, an
                unknown candidate, bad steps, ...).
        """
        plan = ab_pb2.RampPlan(steps=list(steps), min_samples_per_step=min_samples_per_step)
        if min_step_duration_s is not None:
            plan.min_step_duration_s = min_step_duration_s
        if max_error_rate is not None:
            plan.max_error_rate = max_error_rate
        request = ab_pb2.StartExperimentRequest(
            name=name,
            model_name=model_name,
            alias=alias,
            candidate=candidate,
            plan=plan,
            minimum_samples=minimum_samples,
        )
        return Experiment.from_proto(self.client.invoke(_START, request, ab_pb2.StartExperimentResponse).experiment)

    def get(self, name: str) -> Experiment:
        """One experiment's state. Raises ``NotFoundError`` for an unknown name."""
        request = ab_pb2.GetExperimentRequest(name=name)
        return Experiment.from_proto(self.client.invoke(_GET, request, ab_pb2.GetExperimentResponse).experiment)

    def ramp(self, name: str, traffic_split: float | None = None) -> Experiment:
        """Move to the next ramp step, or to the first step at or above ``traffic_split``."""
        request = ab_pb2.RampExperimentRequest(name=name)
        if traffic_split is not None:
            request.traffic_split = traffic_split
        return Experiment.from_proto(self.client.invoke(_RAMP, request, ab_pb2.RampExperimentResponse).experiment)

    def rollback(self, name: str, reason: str = "") -> Experiment:
        """Send no more traffic to the candidate (and move the alias back after a promotion)."""
        request = ab_pb2.RollbackExperimentRequest(name=name, reason=reason)
        response = self.client.invoke(_ROLLBACK, request, ab_pb2.RollbackExperimentResponse)
        return Experiment.from_proto(response.experiment)

    def record_outcome(
        self, request_id: str, *, clicked_rank: int = 0, metrics: Mapping[str, float] | None = None
    ) -> tuple[str, str]:
        """Report what happened after a routed request (a click's 1-based rank, relevance judgements, ...).

        Returns:
            The experiment and the model id the outcome was recorded for.

        Raises:
            RagFactoryError: The mapped error of the sidecar (an unknown or late request id, a bad metric).
        """
        request = ab_pb2.RecordOutcomeRequest(request_id=request_id, clicked_rank=clicked_rank, metrics=metrics or {})
        response = self.client.invoke(_RECORD, request, ab_pb2.RecordOutcomeResponse)
        return response.experiment, response.model_id
