"""TrainingService: fine-tuning jobs in worker processes, watched as event streams."""

from __future__ import annotations

from collections.abc import Iterator

import grpc

from rag_factory.jobs.job_manager import JobManager
from rag_factory_contract.v1 import training_pb2, training_pb2_grpc
from sidecar import convert
from sidecar.errors import translate_all
from sidecar.trust import JobPathPolicy


@translate_all
class TrainingServicer(training_pb2_grpc.TrainingServiceServicer):
    """Thin over :class:`JobManager`."""

    def __init__(self, jobs: JobManager, paths: JobPathPolicy) -> None:
        self._jobs = jobs
        self._paths = paths

    def StartJob(
        self, request: training_pb2.StartJobRequest, context: grpc.ServicerContext
    ) -> training_pb2.StartJobResponse:
        return training_pb2.StartJobResponse(
            job=convert.job_message(self._jobs.start("fine_tune", self._paths.check(convert.job_spec(request))))
        )

    def WatchJob(
        self, request: training_pb2.WatchJobRequest, context: grpc.ServicerContext
    ) -> Iterator[training_pb2.WatchJobResponse]:
        # Ends when the job finishes, or within a poll of the client leaving or its deadline passing.
        events = self._jobs.watch(request.job_id, after=request.after_sequence, keep_going=context.is_active)
        for sequence, event in events:
            yield training_pb2.WatchJobResponse(event=convert.job_event_message(sequence, event))

    def CancelJob(
        self, request: training_pb2.CancelJobRequest, context: grpc.ServicerContext
    ) -> training_pb2.CancelJobResponse:
        return training_pb2.CancelJobResponse(job=convert.job_message(self._jobs.cancel(request.job_id)))

    def GetJob(self, request: training_pb2.GetJobRequest, context: grpc.ServicerContext) -> training_pb2.GetJobResponse:
        return training_pb2.GetJobResponse(job=convert.job_message(self._jobs.get(request.job_id)))

    def ListJobs(
        self, request: training_pb2.ListJobsRequest, context: grpc.ServicerContext
    ) -> training_pb2.ListJobsResponse:
        return training_pb2.ListJobsResponse(jobs=[convert.job_message(j) for j in self._jobs.list_jobs()])
