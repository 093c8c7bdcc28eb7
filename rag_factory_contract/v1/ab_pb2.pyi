import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ExperimentStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EXPERIMENT_STATUS_UNSPECIFIED: _ClassVar[ExperimentStatus]
    EXPERIMENT_STATUS_RAMPING: _ClassVar[ExperimentStatus]
    EXPERIMENT_STATUS_PROMOTED: _ClassVar[ExperimentStatus]
    EXPERIMENT_STATUS_ROLLED_BACK: _ClassVar[ExperimentStatus]
    EXPERIMENT_STATUS_STOPPED: _ClassVar[ExperimentStatus]
EXPERIMENT_STATUS_UNSPECIFIED: ExperimentStatus
EXPERIMENT_STATUS_RAMPING: ExperimentStatus
EXPERIMENT_STATUS_PROMOTED: ExperimentStatus
EXPERIMENT_STATUS_ROLLED_BACK: ExperimentStatus
EXPERIMENT_STATUS_STOPPED: ExperimentStatus

class RampPlan(_message.Message):
    __slots__ = ("steps", "min_samples_per_step", "min_step_duration_s", "max_error_rate")
    STEPS_FIELD_NUMBER: _ClassVar[int]
    MIN_SAMPLES_PER_STEP_FIELD_NUMBER: _ClassVar[int]
    MIN_STEP_DURATION_S_FIELD_NUMBER: _ClassVar[int]
    MAX_ERROR_RATE_FIELD_NUMBER: _ClassVar[int]
    steps: _containers.RepeatedScalarFieldContainer[float]
    min_samples_per_step: int
    min_step_duration_s: float
    max_error_rate: float
    def __init__(self, steps: _Optional[_Iterable[float]] = ..., min_samples_per_step: _Optional[int] = ..., min_step_duration_s: _Optional[float] = ..., max_error_rate: _Optional[float] = ...) -> None: ...

class Experiment(_message.Message):
    __slots__ = ("name", "model_name", "alias", "model_a_id", "model_b_id", "traffic_split", "step_index", "plan", "status", "reason", "samples_a", "samples_b", "step_started_at")
    NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    ALIAS_FIELD_NUMBER: _ClassVar[int]
    MODEL_A_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_B_ID_FIELD_NUMBER: _ClassVar[int]
    TRAFFIC_SPLIT_FIELD_NUMBER: _ClassVar[int]
    STEP_INDEX_FIELD_NUMBER: _ClassVar[int]
    PLAN_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_A_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_B_FIELD_NUMBER: _ClassVar[int]
    STEP_STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    name: str
    model_name: str
    alias: str
    model_a_id: str
    model_b_id: str
    traffic_split: float
    step_index: int
    plan: RampPlan
    status: ExperimentStatus
    reason: str
    samples_a: int
    samples_b: int
    step_started_at: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., model_name: _Optional[str] = ..., alias: _Optional[str] = ..., model_a_id: _Optional[str] = ..., model_b_id: _Optional[str] = ..., traffic_split: _Optional[float] = ..., step_index: _Optional[int] = ..., plan: _Optional[_Union[RampPlan, _Mapping]] = ..., status: _Optional[_Union[ExperimentStatus, str]] = ..., reason: _Optional[str] = ..., samples_a: _Optional[int] = ..., samples_b: _Optional[int] = ..., step_started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class StartExperimentRequest(_message.Message):
    __slots__ = ("name", "model_name", "alias", "candidate", "plan", "minimum_samples", "statistical_threshold")
    NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    ALIAS_FIELD_NUMBER: _ClassVar[int]
    CANDIDATE_FIELD_NUMBER: _ClassVar[int]
    PLAN_FIELD_NUMBER: _ClassVar[int]
    MINIMUM_SAMPLES_FIELD_NUMBER: _ClassVar[int]
    STATISTICAL_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    name: str
    model_name: str
    alias: str
    candidate: str
    plan: RampPlan
    minimum_samples: int
    statistical_threshold: float
    def __init__(self, name: _Optional[str] = ..., model_name: _Optional[str] = ..., alias: _Optional[str] = ..., candidate: _Optional[str] = ..., plan: _Optional[_Union[RampPlan, _Mapping]] = ..., minimum_samples: _Optional[int] = ..., statistical_threshold: _Optional[float] = ...) -> None: ...

class StartExperimentResponse(_message.Message):
    __slots__ = ("experiment",)
    EXPERIMENT_FIELD_NUMBER: _ClassVar[int]
    experiment: Experiment
    def __init__(self, experiment: _Optional[_Union[Experiment, _Mapping]] = ...) -> None: ...

class GetExperimentRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetExperimentResponse(_message.Message):
    __slots__ = ("experiment",)
    EXPERIMENT_FIELD_NUMBER: _ClassVar[int]
    experiment: Experiment
    def __init__(self, experiment: _Optional[_Union[Experiment, _Mapping]] = ...) -> None: ...

class ListExperimentsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListExperimentsResponse(_message.Message):
    __slots__ = ("experiments",)
    EXPERIMENTS_FIELD_NUMBER: _ClassVar[int]
    experiments: _containers.RepeatedCompositeFieldContainer[Experiment]
    def __init__(self, experiments: _Optional[_Iterable[_Union[Experiment, _Mapping]]] = ...) -> None: ...

class RecordOutcomeRequest(_message.Message):
    __slots__ = ("request_id", "clicked_rank", "metrics")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    CLICKED_RANK_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    clicked_rank: int
    metrics: _containers.ScalarMap[str, float]
    def __init__(self, request_id: _Optional[str] = ..., clicked_rank: _Optional[int] = ..., metrics: _Optional[_Mapping[str, float]] = ...) -> None: ...

class RecordOutcomeResponse(_message.Message):
    __slots__ = ("experiment", "model_id")
    EXPERIMENT_FIELD_NUMBER: _ClassVar[int]
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    experiment: str
    model_id: str
    def __init__(self, experiment: _Optional[str] = ..., model_id: _Optional[str] = ...) -> None: ...

class AnalyzeExperimentRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class MetricAnalysis(_message.Message):
    __slots__ = ("name", "mean_a", "mean_b", "improvement", "p_value", "ci_low", "ci_high")
    NAME_FIELD_NUMBER: _ClassVar[int]
    MEAN_A_FIELD_NUMBER: _ClassVar[int]
    MEAN_B_FIELD_NUMBER: _ClassVar[int]
    IMPROVEMENT_FIELD_NUMBER: _ClassVar[int]
    P_VALUE_FIELD_NUMBER: _ClassVar[int]
    CI_LOW_FIELD_NUMBER: _ClassVar[int]
    CI_HIGH_FIELD_NUMBER: _ClassVar[int]
    name: str
    mean_a: float
    mean_b: float
    improvement: float
    p_value: float
    ci_low: float
    ci_high: float
    def __init__(self, name: _Optional[str] = ..., mean_a: _Optional[float] = ..., mean_b: _Optional[float] = ..., improvement: _Optional[float] = ..., p_value: _Optional[float] = ..., ci_low: _Optional[float] = ..., ci_high: _Optional[float] = ...) -> None: ...

class AnalyzeExperimentResponse(_message.Message):
    __slots__ = ("winner", "verdict", "recommendation", "metrics", "samples_a", "samples_b", "sample_ratio_mismatch")
    WINNER_FIELD_NUMBER: _ClassVar[int]
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    RECOMMENDATION_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_A_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_B_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATIO_MISMATCH_FIELD_NUMBER: _ClassVar[int]
    winner: str
    verdict: str
    recommendation: str
    metrics: _containers.RepeatedCompositeFieldContainer[MetricAnalysis]
    samples_a: int
    samples_b: int
    sample_ratio_mismatch: bool
    def __init__(self, winner: _Optional[str] = ..., verdict: _Optional[str] = ..., recommendation: _Optional[str] = ..., metrics: _Optional[_Iterable[_Union[MetricAnalysis, _Mapping]]] = ..., samples_a: _Optional[int] = ..., samples_b: _Optional[int] = ..., sample_ratio_mismatch: _Optional[bool] = ...) -> None: ...

class RampExperimentRequest(_message.Message):
    __slots__ = ("name", "traffic_split")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TRAFFIC_SPLIT_FIELD_NUMBER: _ClassVar[int]
    name: str
    traffic_split: float
    def __init__(self, name: _Optional[str] = ..., traffic_split: _Optional[float] = ...) -> None: ...

class RampExperimentResponse(_message.Message):
    __slots__ = ("experiment",)
    EXPERIMENT_FIELD_NUMBER: _ClassVar[int]
    experiment: Experiment
    def __init__(self, experiment: _Optional[_Union[Experiment, _Mapping]] = ...) -> None: ...

class StopExperimentRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class StopExperimentResponse(_message.Message):
    __slots__ = ("experiment",)
    EXPERIMENT_FIELD_NUMBER: _ClassVar[int]
    experiment: Experiment
    def __init__(self, experiment: _Optional[_Union[Experiment, _Mapping]] = ...) -> None: ...

class RollbackExperimentRequest(_message.Message):
    __slots__ = ("name", "reason")
    NAME_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    name: str
    reason: str
    def __init__(self, name: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class RollbackExperimentResponse(_message.Message):
    __slots__ = ("experiment",)
    EXPERIMENT_FIELD_NUMBER: _ClassVar[int]
    experiment: Experiment
    def __init__(self, experiment: _Optional[_Union[Experiment, _Mapping]] = ...) -> None: ...
