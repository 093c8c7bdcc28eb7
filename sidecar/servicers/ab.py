"""ABTestService: experiments, outcomes, analysis, ramps and rollbacks over the rollout manager."""

from __future__ import annotations

import grpc

from rag_factory.experiments.rollout import RolloutManager, RolloutState
from rag_factory.serving.ab_router import ABRouter, online_metrics
from rag_factory_contract.v1 import ab_pb2, ab_pb2_grpc
from sidecar import convert
from sidecar.errors import translate_all


@translate_all
class ABTestServicer(ab_pb2_grpc.ABTestServiceServicer):
    """Thin over :class:`RolloutManager` and :class:`ABRouter`."""

    def __init__(self, rollouts: RolloutManager, router: ABRouter) -> None:
        self._rollouts = rollouts
        self._router = router

    def _experiment(self, state: RolloutState) -> ab_pb2.Experiment:
        return convert.experiment_message(state, self._rollouts.store.load_results(state.test_name).counts())

    def StartExperiment(
        self, request: ab_pb2.StartExperimentRequest, context: grpc.ServicerContext
    ) -> ab_pb2.StartExperimentResponse:
        state = self._rollouts.start(
            request.name,
            request.model_name,
            request.candidate,
            alias=request.alias or "production",
            plan=convert.plan_from_message(request.plan),
            minimum_samples=request.minimum_samples or 100,
            statistical_threshold=request.statistical_threshold or 0.05,
        )
        return ab_pb2.StartExperimentResponse(experiment=self._experiment(state))

    def GetExperiment(
        self, request: ab_pb2.GetExperimentRequest, context: grpc.ServicerContext
    ) -> ab_pb2.GetExperimentResponse:
        self._rollouts.reload()
        return ab_pb2.GetExperimentResponse(experiment=self._experiment(self._rollouts.state(request.name)))

    def ListExperiments(
        self, request: ab_pb2.ListExperimentsRequest, context: grpc.ServicerContext
    ) -> ab_pb2.ListExperimentsResponse:
        self._rollouts.reload()
        return ab_pb2.ListExperimentsResponse(experiments=[self._experiment(s) for s in self._rollouts.states()])

    def RecordOutcome(
        self, request: ab_pb2.RecordOutcomeRequest, context: grpc.ServicerContext
    ) -> ab_pb2.RecordOutcomeResponse:
        metrics = {**online_metrics(request.clicked_rank), **dict(request.metrics)}
        assignment = self._router.record_outcome(request.request_id, metrics)
        return ab_pb2.RecordOutcomeResponse(experiment=assignment.test_name, model_id=assignment.model_id)

    def AnalyzeExperiment(
        self, request: ab_pb2.AnalyzeExperimentRequest, context: grpc.ServicerContext
    ) -> ab_pb2.AnalyzeExperimentResponse:
        self._rollouts.state(request.name)
        return convert.analysis_message(self._rollouts.framework.analyze(request.name))

    def RampExperiment(
        self, request: ab_pb2.RampExperimentRequest, context: grpc.ServicerContext
    ) -> ab_pb2.RampExperimentResponse:
        split = request.traffic_split if request.HasField("traffic_split") else None
        return ab_pb2.RampExperimentResponse(experiment=self._experiment(self._rollouts.ramp(request.name, split)))

    def StopExperiment(
        self, request: ab_pb2.StopExperimentRequest, context: grpc.ServicerContext
    ) -> ab_pb2.StopExperimentResponse:
        return ab_pb2.StopExperimentResponse(experiment=self._experiment(self._rollouts.stop(request.name)))

    def RollbackExperiment(
        self, request: ab_pb2.RollbackExperimentRequest, context: grpc.ServicerContext
    ) -> ab_pb2.RollbackExperimentResponse:
        state = self._rollouts.rollback(request.name, request.reason or "rolled back by hand")
        return ab_pb2.RollbackExperimentResponse(experiment=self._experiment(state))
