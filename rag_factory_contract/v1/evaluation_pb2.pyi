from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EvaluateRequest(_message.Message):
    __slots__ = ("model", "data_dir", "split", "allow_dangling_qrels")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    DATA_DIR_FIELD_NUMBER: _ClassVar[int]
    SPLIT_FIELD_NUMBER: _ClassVar[int]
    ALLOW_DANGLING_QRELS_FIELD_NUMBER: _ClassVar[int]
    model: str
    data_dir: str
    split: str
    allow_dangling_qrels: bool
    def __init__(self, model: _Optional[str] = ..., data_dir: _Optional[str] = ..., split: _Optional[str] = ..., allow_dangling_qrels: _Optional[bool] = ...) -> None: ...

class EvaluationProgress(_message.Message):
    __slots__ = ("stage", "done", "total", "message")
    STAGE_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    stage: str
    done: int
    total: int
    message: str
    def __init__(self, stage: _Optional[str] = ..., done: _Optional[int] = ..., total: _Optional[int] = ..., message: _Optional[str] = ...) -> None: ...

class EvaluationResult(_message.Message):
    __slots__ = ("model_id", "model_version", "backend", "precision", "dataset", "dataset_hash", "split", "n_queries", "metrics", "corpus_cache_hit", "total_s")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    PRECISION_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    DATASET_HASH_FIELD_NUMBER: _ClassVar[int]
    SPLIT_FIELD_NUMBER: _ClassVar[int]
    N_QUERIES_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    CORPUS_CACHE_HIT_FIELD_NUMBER: _ClassVar[int]
    TOTAL_S_FIELD_NUMBER: _ClassVar[int]
    model_id: str
    model_version: str
    backend: str
    precision: str
    dataset: str
    dataset_hash: str
    split: str
    n_queries: int
    metrics: _containers.ScalarMap[str, float]
    corpus_cache_hit: bool
    total_s: float
    def __init__(self, model_id: _Optional[str] = ..., model_version: _Optional[str] = ..., backend: _Optional[str] = ..., precision: _Optional[str] = ..., dataset: _Optional[str] = ..., dataset_hash: _Optional[str] = ..., split: _Optional[str] = ..., n_queries: _Optional[int] = ..., metrics: _Optional[_Mapping[str, float]] = ..., corpus_cache_hit: _Optional[bool] = ..., total_s: _Optional[float] = ...) -> None: ...

class EvaluateResponse(_message.Message):
    __slots__ = ("progress", "result")
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    progress: EvaluationProgress
    result: EvaluationResult
    def __init__(self, progress: _Optional[_Union[EvaluationProgress, _Mapping]] = ..., result: _Optional[_Union[EvaluationResult, _Mapping]] = ...) -> None: ...

class CompareRetrievalRequest(_message.Message):
    __slots__ = ("model_a", "model_b", "data_dir", "split")
    MODEL_A_FIELD_NUMBER: _ClassVar[int]
    MODEL_B_FIELD_NUMBER: _ClassVar[int]
    DATA_DIR_FIELD_NUMBER: _ClassVar[int]
    SPLIT_FIELD_NUMBER: _ClassVar[int]
    model_a: str
    model_b: str
    data_dir: str
    split: str
    def __init__(self, model_a: _Optional[str] = ..., model_b: _Optional[str] = ..., data_dir: _Optional[str] = ..., split: _Optional[str] = ...) -> None: ...

class PairedMetric(_message.Message):
    __slots__ = ("metric", "mean_a", "mean_b", "ci_low", "ci_high", "t_pvalue", "wilcoxon_pvalue", "wins", "losses")
    METRIC_FIELD_NUMBER: _ClassVar[int]
    MEAN_A_FIELD_NUMBER: _ClassVar[int]
    MEAN_B_FIELD_NUMBER: _ClassVar[int]
    CI_LOW_FIELD_NUMBER: _ClassVar[int]
    CI_HIGH_FIELD_NUMBER: _ClassVar[int]
    T_PVALUE_FIELD_NUMBER: _ClassVar[int]
    WILCOXON_PVALUE_FIELD_NUMBER: _ClassVar[int]
    WINS_FIELD_NUMBER: _ClassVar[int]
    LOSSES_FIELD_NUMBER: _ClassVar[int]
    metric: str
    mean_a: float
    mean_b: float
    ci_low: float
    ci_high: float
    t_pvalue: float
    wilcoxon_pvalue: float
    wins: int
    losses: int
    def __init__(self, metric: _Optional[str] = ..., mean_a: _Optional[float] = ..., mean_b: _Optional[float] = ..., ci_low: _Optional[float] = ..., ci_high: _Optional[float] = ..., t_pvalue: _Optional[float] = ..., wilcoxon_pvalue: _Optional[float] = ..., wins: _Optional[int] = ..., losses: _Optional[int] = ...) -> None: ...

class QueryChange(_message.Message):
    __slots__ = ("query_id", "query", "value_a", "value_b")
    QUERY_ID_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    VALUE_A_FIELD_NUMBER: _ClassVar[int]
    VALUE_B_FIELD_NUMBER: _ClassVar[int]
    query_id: str
    query: str
    value_a: float
    value_b: float
    def __init__(self, query_id: _Optional[str] = ..., query: _Optional[str] = ..., value_a: _Optional[float] = ..., value_b: _Optional[float] = ...) -> None: ...

class CompareRetrievalResponse(_message.Message):
    __slots__ = ("metrics", "improved", "regressed")
    METRICS_FIELD_NUMBER: _ClassVar[int]
    IMPROVED_FIELD_NUMBER: _ClassVar[int]
    REGRESSED_FIELD_NUMBER: _ClassVar[int]
    metrics: _containers.RepeatedCompositeFieldContainer[PairedMetric]
    improved: _containers.RepeatedCompositeFieldContainer[QueryChange]
    regressed: _containers.RepeatedCompositeFieldContainer[QueryChange]
    def __init__(self, metrics: _Optional[_Iterable[_Union[PairedMetric, _Mapping]]] = ..., improved: _Optional[_Iterable[_Union[QueryChange, _Mapping]]] = ..., regressed: _Optional[_Iterable[_Union[QueryChange, _Mapping]]] = ...) -> None: ...
