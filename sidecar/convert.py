"""Where proto messages and core types meet: every conversion between the two lives here."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import numpy as np
from google.protobuf import struct_pb2, timestamp_pb2

from rag_factory.errors import InvalidArgumentError, describe_validation_error, quoted
from rag_factory.experiments.arms import CANDIDATE, CONTROL, served_variant
from rag_factory.experiments.framework import ExperimentAnalysis
from rag_factory.experiments.limits import MAX_REQUEST_ID_CHARS, is_valid_request_id
from rag_factory.experiments.rollout import RolloutPlan, RolloutState
from rag_factory.jobs.job_store import JobRecord
from rag_factory.models.embedding.backends.base import EmbeddingModel
from rag_factory.models.embedding.models import EmbeddingModelMetadata, ModelFormat
from rag_factory.models.embedding.names import DEFAULT_REFERENCE, MAX_NAME_CHARS, check_label, has_visible_text
from rag_factory.models.embedding.records import ModelComparison, ModelRecord
from rag_factory.models.evaluation.comparison import ComparisonReport
from rag_factory.models.evaluation.progress import EvaluationProgress
from rag_factory.models.evaluation.results import EvaluationReport
from rag_factory.serving.engine import EmbedCall, EmbedOutcome
from rag_factory_contract.v1 import (
    ab_pb2,
    common_pb2,
    embedding_pb2,
    evaluation_pb2,
    model_pb2,
    registry_pb2,
    training_pb2,
)

_VARIANTS = {
    "": common_pb2.VARIANT_UNSPECIFIED,
    served_variant(CONTROL): common_pb2.VARIANT_CONTROL,
    served_variant(CANDIDATE): common_pb2.VARIANT_CANDIDATE,
}
_FORMATS = {
    ModelFormat.HUGGINGFACE: registry_pb2.MODEL_FORMAT_HUGGINGFACE,
    ModelFormat.SENTENCE_TRANSFORMERS: registry_pb2.MODEL_FORMAT_SENTENCE_TRANSFORMERS,
    ModelFormat.PYTORCH: registry_pb2.MODEL_FORMAT_PYTORCH,
    ModelFormat.ONNX: registry_pb2.MODEL_FORMAT_ONNX,
}
_FORMATS_BACK: dict[int, ModelFormat] = {int(value): key for key, value in _FORMATS.items()}
_ENCODINGS: dict[int, embedding_pb2.VectorEncoding] = {
    embedding_pb2.VECTOR_ENCODING_UNSPECIFIED: embedding_pb2.VECTOR_ENCODING_PACKED_FLOAT32,
    embedding_pb2.VECTOR_ENCODING_PACKED_FLOAT32: embedding_pb2.VECTOR_ENCODING_PACKED_FLOAT32,
    embedding_pb2.VECTOR_ENCODING_REPEATED_FLOAT: embedding_pb2.VECTOR_ENCODING_REPEATED_FLOAT,
}

# Longest model reference: an id or name (up to 200 characters in records stored before the names rules),
# "@", and a version or alias.
MAX_REFERENCE_CHARS = 512
# Longest A/B routing key (a user or session id; only hashed).
MAX_ROUTING_KEY_CHARS = 256


def embed_call(request: embedding_pb2.EmbedRequest, timeout_s: float | None) -> EmbedCall:
    """An ``EmbedCall`` from a request; the deadline comes from the gRPC context.

    Raises:
        InvalidArgumentError: An unknown encoding; a text with nothing visible in it (only control,
            invisible format or space characters, which all embed to one and the same vector, like an
            empty text); a request id the A/B layer could not store; an over-long reference, routing
            key or domain.
    """
    if request.encoding not in _ENCODINGS:
        raise InvalidArgumentError(
            f"unknown vector encoding {request.encoding}; use VECTOR_ENCODING_PACKED_FLOAT32 or REPEATED_FLOAT"
        )
    for position, text in enumerate(request.texts):
        # Empty and blank texts are the engine's to refuse ("texts[i] is empty"); these only look non-empty.
        if text.strip() and not has_visible_text(text):
            raise InvalidArgumentError(
                f"texts[{position}] has no visible character (only control, invisible or space characters); "
                "every text needs some content"
            )
    if request.request_id and not is_valid_request_id(request.request_id):
        raise InvalidArgumentError(
            f"request_id {quoted(request.request_id)} is not valid: use 1 to {MAX_REQUEST_ID_CHARS} printable "
            "ASCII characters without spaces, or leave it empty for the server to choose one"
        )
    reference(request.model, "model")
    if len(request.routing_key) > MAX_ROUTING_KEY_CHARS:
        raise InvalidArgumentError(f"routing_key is longer than {MAX_ROUTING_KEY_CHARS} characters")
    check_label("domain", request.domain, MAX_NAME_CHARS)
    return EmbedCall(
        texts=list(request.texts),
        # "default" names the default model, as over HTTP; the registry gives no model that name.
        model="" if request.model == DEFAULT_REFERENCE else request.model,
        routing_key=request.routing_key,
        domain=request.domain,
        request_id=request.request_id,
        timeout_s=timeout_s,
        allow_fallback=request.allow_fallback,
        dimensions=request.dimensions if request.HasField("dimensions") else None,  # unset: all of them
    )


def reference(value: str, field: str) -> str:
    """``value`` if it can be a model reference (id, ``name@version``, ``name@alias``, name) by its length.

    Raises:
        InvalidArgumentError: It is longer than any reference the registry can hold.
    """
    if len(value) > MAX_REFERENCE_CHARS:
        raise InvalidArgumentError(
            f"{field} {quoted(value, 40)} is longer than {MAX_REFERENCE_CHARS} characters; no model has such a name"
        )
    return value


def embed_response(outcome: EmbedOutcome, encoding: int) -> embedding_pb2.EmbedResponse:
    """The response for an outcome, with vectors in the requested encoding."""
    vectors = outcome.vectors
    served = outcome.served_by
    response = embedding_pb2.EmbedResponse(
        count=vectors.shape[0],
        dimension=vectors.shape[1],
        encoding=_ENCODINGS[encoding],
        request_id=outcome.request_id,
        served_by=common_pb2.ServedBy(
            model_id=served.model_id,
            model_name=served.model_name,
            version=served.version,
            variant=_VARIANTS.get(served.variant, common_pb2.VARIANT_UNSPECIFIED),
            experiment=served.experiment,
            fallback=served.fallback,
            fallback_reason=served.fallback_reason,
            requested_model=served.requested_model,
            backend=served.backend,
            precision=served.precision,
        ),
        timings=common_pb2.Timings(
            queue_ms=outcome.queue_ms,
            inference_ms=outcome.inference_ms,
            total_ms=outcome.total_ms,
            batch_texts=outcome.batch_texts,
        ),
    )
    if response.encoding == embedding_pb2.VECTOR_ENCODING_PACKED_FLOAT32:
        little_endian = vectors if sys.byteorder == "little" else vectors.byteswap()
        response.packed = np.ascontiguousarray(little_endian, dtype=np.float32).tobytes()
    else:
        response.vectors.extend(embedding_pb2.Vector(values=row) for row in vectors.tolist())
    return response


def _timestamp(value: datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(value.astimezone(UTC).replace(tzinfo=None))
    return stamp


def metadata_message(metadata: EmbeddingModelMetadata) -> registry_pb2.ModelMetadata:
    """``EmbeddingModelMetadata`` as a proto message."""
    return registry_pb2.ModelMetadata(
        model_id=metadata.model_id,
        model_name=metadata.model_name,
        version=metadata.version,
        format=_FORMATS[metadata.format],
        embedding_dim=metadata.embedding_dim,
        max_seq_length=metadata.max_seq_length,
        base_model=metadata.base_model or "",
        fine_tuned_on=metadata.fine_tuned_on or "",
        domain=metadata.domain or "",
        description=metadata.description or "",
        created_by=metadata.created_by or "",
        tags=metadata.tags,
        created_at=_timestamp(metadata.created_at),
    )


def metadata_from_message(message: registry_pb2.ModelMetadata) -> EmbeddingModelMetadata:
    """``EmbeddingModelMetadata`` from a proto message (validated by pydantic; the registry checks the rest)."""
    if message.format not in _FORMATS_BACK:
        raise InvalidArgumentError(
            f"metadata.format must be set to a known format ({message.format} is not one); "
            f"valid: {', '.join(f.value for f in ModelFormat)}"
        )
    fields: dict[str, Any] = {
        "model_id": message.model_id,
        "model_name": message.model_name,
        "version": message.version,
        "format": _FORMATS_BACK[message.format],
        "embedding_dim": message.embedding_dim,
        "max_seq_length": message.max_seq_length,
        "tags": list(message.tags),
    }
    for name in ("base_model", "fine_tuned_on", "domain", "description", "created_by"):
        if getattr(message, name):
            fields[name] = getattr(message, name)
    if message.HasField("created_at"):
        fields["created_at"] = _datetime(message.created_at, "metadata.created_at")
    return validated(EmbeddingModelMetadata, fields)


def _datetime(stamp: timestamp_pb2.Timestamp, field: str) -> datetime:
    # Timestamps outside 0001-01-01..9999-12-31, or with nanos out of range, have no datetime.
    try:
        return stamp.ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError, OSError) as exc:
        raise InvalidArgumentError(
            f"{field} is not a valid time (seconds {stamp.seconds}, nanos {stamp.nanos}); use one between "
            "years 1 and 9999"
        ) from exc


def validated(model: type[EmbeddingModelMetadata], fields: dict[str, Any]) -> EmbeddingModelMetadata:
    """Validate fields into a pydantic model, turning validation errors into INVALID_ARGUMENT."""
    from pydantic import ValidationError

    try:
        return model.model_validate(fields)
    except ValidationError as exc:
        problems = describe_validation_error(exc)
        raise InvalidArgumentError(f"invalid model metadata: {problems}") from exc


def struct_to_dict(message: struct_pb2.Struct, field: str = "options") -> dict[str, Any]:
    """A ``google.protobuf.Struct`` as a plain dict; numbers stay floats, as JSON has them.

    Raises:
        InvalidArgumentError: A number is NaN or infinite (nothing stores them, and JSON cannot say
            them), naming where it is, e.g. ``load_config.additional_config.onnx_threads``.
    """
    return {key: _plain(value, f"{field}.{key}") for key, value in message.fields.items()}


def _plain(value: struct_pb2.Value, where: str) -> Any:
    kind = value.WhichOneof("kind")
    if kind == "struct_value":
        return struct_to_dict(value.struct_value, where)
    if kind == "list_value":
        return [_plain(item, f"{where}[{index}]") for index, item in enumerate(value.list_value.values)]
    if kind == "number_value":
        if not math.isfinite(value.number_value):
            raise InvalidArgumentError(f"{quoted(where)} is {value.number_value}; numbers must be finite")
        return value.number_value
    if kind == "string_value":
        return value.string_value
    if kind == "bool_value":
        return value.bool_value
    return None  # null_value, or no kind set


def record_message(record: ModelRecord, aliases: Iterable[str] = ()) -> registry_pb2.ModelRecord:
    """A registry record as a proto message."""
    load_config = struct_pb2.Struct()
    load_config.update(json.loads(json.dumps(record.load_config)))
    return registry_pb2.ModelRecord(
        metadata=metadata_message(record.metadata),
        metrics=record.all_metrics(),
        load_config=load_config,
        artifact_sha256=record.artifact_sha256 or "",
        deprecated=record.deprecated,
        deprecation_reason=record.deprecation_reason,
        registered_at=_timestamp(record.registered_at),
        aliases=sorted(aliases),
    )


def comparison_message(comparison: ModelComparison) -> registry_pb2.CompareModelsResponse:
    """A side-by-side comparison as a proto message."""
    response = registry_pb2.CompareModelsResponse(model_a=comparison.model_a, model_b=comparison.model_b)
    for field_name, (a, b) in sorted(comparison.metadata_diff.items()):
        response.metadata_differences.add(field=field_name, a=json.dumps(a, default=str), b=json.dumps(b, default=str))
    for name, delta in sorted(comparison.metrics.items()):
        item = response.metrics.add(name=name)
        if delta.a is not None:
            item.a = delta.a
        if delta.b is not None:
            item.b = delta.b
        if delta.delta is not None:
            item.delta = delta.delta
    return response


def model_info(record: ModelRecord, model: EmbeddingModel | None) -> model_pb2.ModelInfo:
    """What the model service reports about a model."""
    return model_pb2.ModelInfo(
        model_id=record.model_id,
        model_name=record.metadata.model_name,
        version=record.metadata.version,
        embedding_dimension=model.embedding_dim if model else record.metadata.embedding_dim,
        max_seq_length=model.max_seq_length if model else record.metadata.max_seq_length,
        format=record.metadata.format.value,
        deprecated=record.deprecated,
        loaded=model is not None,
        backend=model.info.backend if model else "",
        precision=model.info.precision if model else "",
    )


def format_from_message(value: int) -> ModelFormat | None:
    """The core format for a proto enum value (None for UNSPECIFIED).

    Raises:
        InvalidArgumentError: A value the contract does not define (a client built from a newer proto).
    """
    if value == registry_pb2.MODEL_FORMAT_UNSPECIFIED:
        return None
    if value not in _FORMATS_BACK:
        raise InvalidArgumentError(f"format {value} is not a known ModelFormat; valid: 0 (any) to {max(_FORMATS_BACK)}")
    return _FORMATS_BACK[value]


_STATUSES = {
    "ramping": ab_pb2.EXPERIMENT_STATUS_RAMPING,
    "promoted": ab_pb2.EXPERIMENT_STATUS_PROMOTED,
    "rolled_back": ab_pb2.EXPERIMENT_STATUS_ROLLED_BACK,
    "stopped": ab_pb2.EXPERIMENT_STATUS_STOPPED,
}


def plan_from_message(message: ab_pb2.RampPlan) -> RolloutPlan:
    """A ramp plan from its message; unset fields take the defaults."""
    fields: dict[str, Any] = {}
    if message.steps:
        fields["steps"] = list(message.steps)
    if message.min_samples_per_step:
        fields["min_samples_per_step"] = message.min_samples_per_step
    if message.HasField("min_step_duration_s"):
        fields["min_step_duration_s"] = message.min_step_duration_s
    if message.HasField("max_error_rate"):
        fields["max_error_rate"] = message.max_error_rate
    from pydantic import ValidationError

    try:
        return RolloutPlan.model_validate(fields)
    except ValidationError as exc:
        problems = describe_validation_error(exc)
        raise InvalidArgumentError(f"invalid ramp plan: {problems}") from exc


def experiment_message(state: RolloutState, samples: tuple[int, int]) -> ab_pb2.Experiment:
    """A rollout's state as a message, with the sample counts of each arm."""
    plan = state.plan
    started = timestamp_pb2.Timestamp()
    started.FromSeconds(int(state.step_started_at))
    return ab_pb2.Experiment(
        name=state.test_name,
        model_name=state.model_name,
        alias=state.alias,
        model_a_id=state.model_a_id,
        model_b_id=state.model_b_id,
        traffic_split=state.split,
        step_index=state.step_index,
        plan=ab_pb2.RampPlan(
            steps=plan.steps,
            min_samples_per_step=plan.min_samples_per_step,
            min_step_duration_s=plan.min_step_duration_s,
            max_error_rate=plan.max_error_rate,
        ),
        status=_STATUSES[state.status],
        reason=state.reason,
        samples_a=samples[0],
        samples_b=samples[1],
        step_started_at=started,
    )


def analysis_message(analysis: ExperimentAnalysis) -> ab_pb2.AnalyzeExperimentResponse:
    """An experiment analysis as a message."""
    result = analysis.result
    response = ab_pb2.AnalyzeExperimentResponse(
        winner=result.winner,
        verdict=analysis.decision.verdict,
        recommendation=result.recommendation,
        samples_a=result.model_a_samples,
        samples_b=result.model_b_samples,
        sample_ratio_mismatch=bool(analysis.decision.sample_ratio and analysis.decision.sample_ratio.flagged),
    )
    for name, comparison in result.metrics.items():
        low, high = result.confidence_intervals.get(name, (float("nan"), float("nan")))
        response.metrics.add(
            name=name,
            mean_a=comparison.model_a,
            mean_b=comparison.model_b,
            improvement=comparison.improvement,
            p_value=result.p_values.get(name, float("nan")),
            ci_low=low,
            ci_high=high,
        )
    return response


_JOB_STATUSES = {
    "pending": training_pb2.JOB_STATUS_PENDING,
    "running": training_pb2.JOB_STATUS_RUNNING,
    "cancelling": training_pb2.JOB_STATUS_CANCELLING,
    "succeeded": training_pb2.JOB_STATUS_SUCCEEDED,
    "failed": training_pb2.JOB_STATUS_FAILED,
    "cancelled": training_pb2.JOB_STATUS_CANCELLED,
    "interrupted": training_pb2.JOB_STATUS_INTERRUPTED,
}


def _struct(data: dict[str, Any] | None) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    if data:
        message.update(json.loads(json.dumps(data, default=str)))
    return message


def job_spec(request: training_pb2.StartJobRequest) -> dict[str, Any]:
    """The fine-tuning spec (FineTuneConfig fields) of a StartJob request."""
    spec = struct_to_dict(request.options)
    spec["data_dir"] = request.data_dir
    if request.base_model:
        spec["base_model"] = request.base_model
    if request.strategy:
        spec["strategy"] = request.strategy
    return spec


def job_message(job: JobRecord) -> training_pb2.Job:
    """A job as a message."""
    return training_pb2.Job(
        job_id=job.job_id, kind=job.kind, status=_JOB_STATUSES[job.status], spec=_struct(job.spec),
        result=_struct(job.result), error=job.error, created_at=_timestamp(job.created_at),
        updated_at=_timestamp(job.updated_at),
    )  # fmt: skip


def job_event_message(sequence: int, event: dict[str, Any]) -> training_pb2.JobEvent:
    """A worker event as a message."""
    message = training_pb2.JobEvent(
        sequence=sequence, kind=str(event.get("kind", "")), step=int(event.get("step") or 0),
        total_steps=int(event.get("total_steps") or 0), message=str(event.get("message") or ""), raw=_struct(event),
    )  # fmt: skip
    if event.get("loss") is not None:
        message.loss = float(event["loss"])
    if event.get("eta_s") is not None:
        message.eta_s = float(event["eta_s"])
    for name, value in (event.get("metrics") or {}).items():
        if isinstance(value, int | float):
            message.metrics[name] = float(value)
    return message


def evaluation_progress_message(progress: EvaluationProgress) -> evaluation_pb2.EvaluateResponse:
    """A progress report of an evaluation."""
    return evaluation_pb2.EvaluateResponse(
        progress=evaluation_pb2.EvaluationProgress(
            stage=str(progress.stage), done=progress.done, total=progress.total, message=progress.message
        )
    )


def evaluation_result_message(report: EvaluationReport) -> evaluation_pb2.EvaluateResponse:
    """The final message of an evaluation."""
    return evaluation_pb2.EvaluateResponse(
        result=evaluation_pb2.EvaluationResult(
            model_id=report.model_id, model_version=report.model_version, backend=report.backend,
            precision=report.precision, dataset=report.dataset, dataset_hash=report.dataset_hash, split=report.split,
            n_queries=report.n_queries, metrics={**report.metrics, **report.custom_metrics},
            corpus_cache_hit=report.corpus_cache == "hit", total_s=report.timings.total_s,
        )
    )  # fmt: skip


def comparison_retrieval_message(report: ComparisonReport) -> evaluation_pb2.CompareRetrievalResponse:
    """Paired tests and the largest per-query changes of a comparison."""
    response = evaluation_pb2.CompareRetrievalResponse()
    for name, test in report.tests.items():
        response.metrics.add(
            metric=name, mean_a=test.mean_a, mean_b=test.mean_b, ci_low=test.ci_low, ci_high=test.ci_high,
            t_pvalue=test.t_pvalue, wilcoxon_pvalue=test.wilcoxon_pvalue, wins=test.wins, losses=test.losses,
        )  # fmt: skip
    for target, changes in ((response.improved, report.error_analysis.improved),
                            (response.regressed, report.error_analysis.regressed)):  # fmt: skip
        for change in changes:
            target.add(query_id=change.query_id, query=change.query, value_a=change.value_a, value_b=change.value_b)
    return response
