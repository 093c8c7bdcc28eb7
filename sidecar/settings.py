"""Sidecar settings: a YAML file (SPEC §4 layout) with environment overrides, read once at start-up."""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from rag_factory.errors import InvalidConfigError, describe_choices, describe_validation_error
from rag_factory.serving.engine import BatchingConfig
from rag_factory.serving.limits import RequestLimits

# Environment variable -> dotted settings path. Values are parsed as YAML scalars ("0.2", "true").
ENV_OVERRIDES: dict[str, str] = {
    "RAG_FACTORY_ADDRESS": "address",
    "RAG_FACTORY_DEFAULT_MODEL_ID": "models.embedding.default_model_id",
    "RAG_FACTORY_REGISTRY_PATH": "models.embedding.registry_path",
    "RAG_FACTORY_CACHE_DIR": "models.embedding.cache_dir",
    "RAG_FACTORY_CACHE_SIZE_GB": "models.embedding.cache_size_gb",
    "RAG_FACTORY_AB_ENABLED": "models.embedding.ab_testing.enabled",
    "RAG_FACTORY_AB_DEFAULT_TRAFFIC_SPLIT": "models.embedding.ab_testing.default_traffic_split",
    "RAG_FACTORY_AUTH_TOKEN": "auth_token",
    "RAG_FACTORY_CLIENT_TOKEN": "client_token",
    "RAG_FACTORY_TLS_CERT": "tls.cert_file",
    "RAG_FACTORY_TLS_KEY": "tls.key_file",
    "RAG_FACTORY_METRICS_ADDRESS": "metrics_address",
    "RAG_FACTORY_REQUEST_LOG": "request_log",
    "RAG_FACTORY_HTTP_ADDRESS": "http_address",
}


class _Section(BaseModel):
    """A settings section: a key it does not know is an error (a misspelt key would otherwise be ignored)."""

    model_config = ConfigDict(extra="forbid")


class ABTestingSettings(_Section):
    """``models.embedding.ab_testing``."""

    enabled: bool = Field(default=True, description="Route requests for aliases under test.")
    default_traffic_split: float = Field(default=0.1, ge=0.0, le=1.0, description="Split of new experiments.")
    tick_interval_s: float = Field(default=5.0, gt=0, description="How often ramps and guardrails are checked.")


class EmbeddingSettings(_Section):
    """``models.embedding``."""

    default_model_id: str = Field(default="minilm", description="Model reference served when none is named.")
    registry_path: str = Field(default="./model_registry", description="Registry directory (SQLite + artifacts).")
    cache_dir: str = Field(default="~/.cache/rag_factory", description="ONNX exports and int8 copies.")
    cache_size_gb: float = Field(default=4.0, gt=0, description="Memory budget of loaded models.")
    ab_testing: ABTestingSettings = Field(default_factory=ABTestingSettings, description="A/B routing.")
    import_roots: list[str] = Field(
        default_factory=list,
        description=(
            "Folders whose files RegisterModel may copy into the registry (artifact_path); empty: clients "
            "cannot name server files at all."
        ),
    )
    data_roots: list[str] = Field(
        default_factory=list,
        description=(
            "Folders StartJob, Evaluate and CompareRetrieval may read datasets (and a job its base or teacher "
            "model) from; the bundled datasets are always readable."
        ),
    )
    max_concurrent_jobs: int = Field(
        default=1, ge=1, description="Fine-tuning jobs running at once; more answer RESOURCE_EXHAUSTED."
    )
    job_cancel_grace_s: float = Field(
        default=60.0,
        gt=0,
        allow_inf_nan=False,
        description="A cancelled job's worker still alive after this long is killed (SIGKILL).",
    )
    jobs_dir: str = Field(default="", description="Where jobs write; empty means <registry_path>/jobs.")
    max_artifact_gb: float = Field(
        default=10.0, gt=0, allow_inf_nan=False, description="Largest artifact RegisterModel copies."
    )


class ModelsSettings(_Section):
    """``models``."""

    embedding: EmbeddingSettings = Field(default_factory=EmbeddingSettings, description="Embedding models.")


class TLSSettings(_Section):
    """``tls``: both files switch TLS on."""

    cert_file: str | None = Field(default=None, description="PEM certificate chain.")
    key_file: str | None = Field(default=None, description="PEM private key.")


class ConcurrencySettings(_Section):
    """``concurrency``: how much work the server admits before it refuses (RESOURCE_EXHAUSTED)."""

    max_concurrent_rpcs: int = Field(
        default=64,
        gt=0,
        description=(
            "Calls running or waiting for a worker thread; more are refused at once with RESOURCE_EXHAUSTED "
            "rather than queued until their deadline."
        ),
    )
    max_streams: int = Field(
        default=8,
        gt=0,
        description=(
            "Streaming calls (EmbedStream, WatchJob, Evaluate, health Watch) open at once; keep it below "
            "max_workers so that unary calls always find a thread."
        ),
    )
    stream_idle_timeout_s: float = Field(
        default=60.0, gt=0, allow_inf_nan=False, description="A client stream silent this long is ended."
    )
    stream_max_duration_s: float = Field(
        default=3600.0, gt=0, allow_inf_nan=False, description="A stream open this long is cancelled."
    )


class SidecarSettings(_Section):
    """Everything the sidecar needs, validated once at start-up."""

    address: str = Field(default="127.0.0.1:50051", description="HOST:PORT to bind; port 0 picks a free one.")
    models: ModelsSettings = Field(default_factory=ModelsSettings, description="Model settings (SPEC §4).")
    limits: RequestLimits = Field(default_factory=RequestLimits, description="Request limits.")
    batching: BatchingConfig = Field(default_factory=BatchingConfig, description="Micro-batching.")
    max_workers: int = Field(default=16, gt=0, description="gRPC worker threads.")
    concurrency: ConcurrencySettings = Field(default_factory=ConcurrencySettings, description="Admission limits.")
    readiness_interval_s: float = Field(
        default=5.0,
        gt=0,
        allow_inf_nan=False,
        description="How often health re-checks that the default model resolves and loads.",
    )
    grace_period_s: float = Field(default=10.0, ge=0, description="Time in-flight calls get on shutdown.")
    auth_token: str | None = Field(
        default=None, description="Admin token: 'authorization: Bearer <token>' may make every call."
    )
    client_token: str | None = Field(
        default=None,
        description="Client token: may embed and read, not change what is served (docs/security.md).",
    )
    tls: TLSSettings = Field(default_factory=TLSSettings, description="TLS (off unless both files are set).")
    metrics_address: str | None = Field(
        default=None, description="HOST:PORT of a port that serves only Prometheus /metrics (docs/metrics.md)."
    )
    request_log: bool = Field(
        default=False,
        description=(
            "One JSON line per embedding request on the 'rag_factory.requests' logger: ids, models, counts, "
            "status and timings, never the texts (docs/metrics.md)."
        ),
    )
    http_address: str | None = Field(
        default="127.0.0.1:8080",
        description=(
            "HOST:PORT of the HTTP API (OpenAI /v1/embeddings, /health, /ready, /info, /metrics; docs/http.md); "
            "port 0 picks a free one; null (or off) turns it off."
        ),
    )
    load_entry_point_plugins: bool = Field(default=True, description="Load plugins from entry points.")

    @model_validator(mode="before")
    @classmethod
    def _http_off(cls, data: Any) -> Any:
        # YAML reads `off` (and so RAG_FACTORY_HTTP_ADDRESS=off) as False; "off" and "none" say the same as null.
        if isinstance(data, dict) and data.get("http_address") in (False, "off", "none"):
            return {**data, "http_address": None}
        return data

    @model_validator(mode="after")
    def _streams_leave_threads_for_unary_calls(self) -> SidecarSettings:
        if self.concurrency.max_streams >= self.max_workers:
            raise ValueError(
                f"concurrency.max_streams ({self.concurrency.max_streams}) must be below max_workers "
                f"({self.max_workers}): open streams would leave no thread for unary calls and health"
            )
        return self

    @property
    def embedding(self) -> EmbeddingSettings:
        """Shortcut to ``models.embedding``."""
        return self.models.embedding


def _set_path(tree: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    for part in parents:
        tree = tree.setdefault(part, {})
    tree[leaf] = value


def _env_value(text: str) -> Any:
    """An environment value as a YAML scalar ("0.2", "true", "null"), else as the text itself.

    Every overridden setting is a scalar, and some plain strings are not YAML: ``[::1]:8080`` (an IPv6
    address) starts a YAML list and fails to parse, ``[::1]`` parses as one.
    """
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    return text if isinstance(value, list | dict) else value


def load_settings(path: str | Path | None = None, environ: Mapping[str, str] | None = None) -> SidecarSettings:
    """Read settings from a YAML file (optional) and apply ``RAG_FACTORY_*`` environment overrides.

    Raises:
        InvalidConfigError: The file is missing or invalid, or a value does not validate.
    """
    tree: dict[str, Any] = {}
    if path is not None:
        file = Path(path)
        if not file.is_file():
            raise InvalidConfigError(f"config file {str(file)!r} does not exist")
        try:
            tree = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise InvalidConfigError(f"config file {str(file)!r} is not valid YAML: {exc}") from exc
        if not isinstance(tree, dict):
            raise InvalidConfigError(f"config file {str(file)!r} must hold a mapping")
    env = os.environ if environ is None else environ
    for variable, dotted in ENV_OVERRIDES.items():
        if variable in env:
            _set_path(tree, dotted, _env_value(env[variable]))
    try:
        return SidecarSettings.model_validate(tree)
    except ValidationError as exc:
        problems = _describe_unknown_keys(exc) or describe_validation_error(exc)
        raise InvalidConfigError(f"invalid sidecar settings: {problems}") from exc


def _describe_unknown_keys(exc: ValidationError, limit: int = 5) -> str | None:
    # "unknown key 'models.embedding.defualt_model_id'; did you mean 'models.embedding.default_model_id'?"
    # A misspelt key is the usual mistake, so naming the nearest valid key is most of the fix.
    unknown = [error for error in exc.errors() if error["type"] == "extra_forbidden"]
    if not unknown:
        return None
    described = []
    for error in unknown[:limit]:
        *parents, key = (str(part) for part in error["loc"])
        valid = _keys_under(parents)
        nearest = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
        dotted = ".".join([*parents, key])
        hint = (
            f"did you mean {'.'.join([*parents, nearest[0]])!r}?"
            if nearest
            else f"valid keys there: {describe_choices(valid, limit=20)}"
        )
        described.append(f"unknown key {dotted[:200]!r}; {hint}")
    return "; ".join(described)


def _keys_under(path: list[str]) -> list[str]:
    section: type[BaseModel] = SidecarSettings
    for part in path:
        field = section.model_fields.get(part)
        annotation = field.annotation if field is not None else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        section = annotation
    return list(section.model_fields)
