"""Build and run the sidecar: services over the core library, health, reflection, auth, TLS, shutdown."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import grpc
import pluggy
from grpc_health.v1 import health, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from rag_factory.experiments.framework import ABTestingFramework
from rag_factory.experiments.rollout import RolloutManager
from rag_factory.experiments.sqlite_store import SQLiteExperimentStore
from rag_factory.hooks.manager import build_plugin_manager
from rag_factory.jobs.job_manager import JobManager
from rag_factory.models.embedding.loader import CustomModelLoader
from rag_factory.models.embedding.registry import ModelRegistry
from rag_factory.models.monitoring.prometheus import ServingMetrics
from rag_factory.serving.ab_router import ABRouter
from rag_factory.serving.engine import EmbeddingEngine
from rag_factory.storage import database_path
from rag_factory_contract.v1 import (
    ab_pb2,
    ab_pb2_grpc,
    embedding_pb2,
    embedding_pb2_grpc,
    evaluation_pb2,
    evaluation_pb2_grpc,
    model_pb2,
    model_pb2_grpc,
    registry_pb2,
    registry_pb2_grpc,
    training_pb2,
    training_pb2_grpc,
)
from sidecar.access import TokenAccess
from sidecar.admission import StreamAdmission
from sidecar.errors import UndecodableRequests
from sidecar.health import NOT_SERVING, HealthService, ReadinessMonitor
from sidecar.http.runner import start_http
from sidecar.metrics_http import start_metrics_server
from sidecar.servicers.ab import ABTestServicer
from sidecar.servicers.embedding import EmbeddingServicer
from sidecar.servicers.evaluation import EvaluationServicer
from sidecar.servicers.model import ModelServicer
from sidecar.servicers.registry import RegistryServicer
from sidecar.servicers.training import TrainingServicer
from sidecar.settings import SidecarSettings
from sidecar.startup import choose_default_model, load_default_model, preflight, startup_step
from sidecar.trust import ImportPolicy, JobPathPolicy

logger = logging.getLogger(__name__)

SERVICE_NAMES = (
    embedding_pb2.DESCRIPTOR.services_by_name["EmbeddingService"].full_name,
    model_pb2.DESCRIPTOR.services_by_name["ModelService"].full_name,
    registry_pb2.DESCRIPTOR.services_by_name["RegistryService"].full_name,
    ab_pb2.DESCRIPTOR.services_by_name["ABTestService"].full_name,
    training_pb2.DESCRIPTOR.services_by_name["TrainingService"].full_name,
    evaluation_pb2.DESCRIPTOR.services_by_name["EvaluationService"].full_name,
)


def _server_version() -> str:
    try:
        return version("rag-factory")
    except PackageNotFoundError:  # pragma: no cover - running from a plain checkout
        return "0+unknown"


@dataclass
class SidecarServices:
    """The core objects one sidecar serves; built once from settings and handed to the servicers."""

    settings: SidecarSettings
    registry: ModelRegistry
    loader: CustomModelLoader
    engine: EmbeddingEngine
    hooks: pluggy.PluginManager
    metrics: ServingMetrics
    rollouts: RolloutManager
    router: ABRouter
    jobs: JobManager
    health: HealthService = field(default_factory=HealthService)
    ready: threading.Event = field(default_factory=threading.Event)
    on_stop: list[Callable[[], None]] = field(default_factory=list)
    http_port: int | None = None  # the HTTP API's port once started (None: http_address is null)
    stop_http: Callable[[], None] | None = None  # drains and stops the HTTP API (idempotent)
    _closed: threading.Event = field(default_factory=threading.Event)
    _closing: threading.Lock = field(default_factory=threading.Lock)

    def close(self) -> None:
        """Finish queued inference, stop background work and release resources (idempotent).

        A second caller waits until the first has finished: ``serve()`` and the thread that closes the
        services when gRPC stops both call it, and the process must not exit while HTTP still drains.
        """
        with self._closing:
            if self._closed.is_set():
                return
            self._closed.set()
            for callback in self.on_stop:
                callback()
            self.engine.close()
            self.jobs.close()
            self.registry.close()


def build_services(settings: SidecarSettings, *, plugins: tuple[object, ...] = ()) -> SidecarServices:
    """Create the registry, loader, hooks, metrics and engine described by ``settings``."""
    embedding = settings.embedding
    registry = ModelRegistry(embedding.registry_path)
    loader = CustomModelLoader(
        cache_budget_mb=embedding.cache_size_gb * 1024, cache_dir=Path(embedding.cache_dir).expanduser()
    )
    hooks = build_plugin_manager("sidecar", load_entry_points=settings.load_entry_point_plugins, plugins=plugins)
    # The sidecar is a process of its own: its registry also carries the process's CPU, memory and GC.
    metrics = ServingMetrics(process_metrics=True)
    store = SQLiteExperimentStore(database_path(registry.path))
    rollouts = RolloutManager(registry, ABTestingFramework(store=store), store, hooks=hooks)
    router = ABRouter(rollouts)
    engine = EmbeddingEngine(
        registry,
        loader,
        default_model=embedding.default_model_id,
        limits=settings.limits,
        batching=settings.batching,
        hooks=hooks,
        metrics=metrics,
        router=router if embedding.ab_testing.enabled else None,
        request_log=settings.request_log,
    )
    engine.add_listener(router.on_served)
    engine.add_failure_listener(router.on_failed)
    rollouts.warm_up = engine.load
    jobs = JobManager(
        registry.path,
        max_concurrent_jobs=embedding.max_concurrent_jobs,
        cancel_grace_s=embedding.job_cancel_grace_s,
    )
    interrupted = jobs.recover()  # a job "running" before a restart has lost its worker
    if interrupted:
        logger.warning("marked %d job(s) interrupted: %s", len(interrupted), ", ".join(interrupted))
    services = SidecarServices(settings, registry, loader, engine, hooks, metrics, rollouts, router, jobs)
    if embedding.ab_testing.enabled:
        _start_rollout_ticker(services, embedding.ab_testing.tick_interval_s)
    return services


def _start_rollout_ticker(services: SidecarServices, interval_s: float) -> None:
    # Ramp steps advance and guardrail breaches roll back without anyone calling an RPC.
    stop = threading.Event()

    def tick() -> None:
        while not stop.wait(interval_s):
            try:
                services.rollouts.tick_all()
            except Exception:
                logger.exception("checking rollouts failed")

    threading.Thread(target=tick, name="rollouts", daemon=True).start()
    services.on_stop.append(stop.set)


def _watch_readiness(services: SidecarServices) -> ReadinessMonitor:
    # Health says NOT_SERVING until the default model can answer (load balancers wait for it), and again
    # whenever it stops being able to (deprecated, deleted, broken): health never lies about embeddings.
    def load_default() -> str:
        record, _model = services.engine.load()
        return f"{record.model_id} ({record.ref})"

    def warm_up() -> str:
        record, model = services.engine.load()
        model.encode(["warm-up"])
        return f"{record.model_id} ({record.ref})"

    monitor = ReadinessMonitor(
        services.health,
        ("", *SERVICE_NAMES),
        warm_up=warm_up,
        check=load_default,
        interval_s=services.settings.readiness_interval_s,
        on_ready=services.ready.set,
    )
    services.on_stop.append(monitor.stop)
    return monitor


def build_server(settings: SidecarSettings, services: SidecarServices | None = None) -> tuple[grpc.Server, int]:
    """Create and start the gRPC server; the default model loads in the background.

    Args:
        settings: Validated settings; ``address`` with port 0 binds a free port.
        services: Core objects to serve (built from ``settings`` when None).

    Returns:
        The started server and the port it is bound to. Call ``server.stop(grace)`` to stop it; the
        services are closed when it has stopped.

    Raises:
        OSError: ``address``, ``metrics_address`` or ``http_address`` cannot be bound; the message names which.
    """
    services = services or build_services(settings)
    limits = settings.limits
    options = [
        ("grpc.max_receive_message_length", limits.max_message_bytes),
        ("grpc.max_send_message_length", limits.max_message_bytes),
    ]
    concurrency = settings.concurrency
    interceptors: list[grpc.ServerInterceptor] = []
    if settings.auth_token or settings.client_token:
        interceptors.append(TokenAccess(settings.auth_token, settings.client_token))
    interceptors.append(
        StreamAdmission(concurrency.max_streams, concurrency.stream_idle_timeout_s, concurrency.stream_max_duration_s)
    )
    # Last, next to the servicers: a request protobuf cannot decode answers INVALID_ARGUMENT, not INTERNAL.
    interceptors.append(UndecodableRequests())
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=settings.max_workers, thread_name_prefix="rpc"),
        options=options,
        interceptors=interceptors,
        # Calls beyond this answer RESOURCE_EXHAUSTED at once instead of queueing until their deadline.
        maximum_concurrent_rpcs=concurrency.max_concurrent_rpcs,
    )
    embedding_pb2_grpc.add_EmbeddingServiceServicer_to_server(EmbeddingServicer(services.engine), server)
    model_pb2_grpc.add_ModelServiceServicer_to_server(
        ModelServicer(
            services.engine,
            server_version=_server_version(),
            ab_testing_enabled=settings.embedding.ab_testing.enabled,
        ),
        server,
    )
    imports = ImportPolicy.from_settings(settings.embedding.import_roots, settings.embedding.max_artifact_gb)
    registry_pb2_grpc.add_RegistryServiceServicer_to_server(RegistryServicer(services.registry, imports), server)
    ab_pb2_grpc.add_ABTestServiceServicer_to_server(ABTestServicer(services.rollouts, services.router), server)
    job_paths = JobPathPolicy.from_settings(
        settings.embedding.data_roots,
        settings.embedding.jobs_dir,
        settings.embedding.registry_path,
        import_roots=settings.embedding.import_roots,
    )
    training_pb2_grpc.add_TrainingServiceServicer_to_server(TrainingServicer(services.jobs, job_paths), server)
    evaluation_pb2_grpc.add_EvaluationServiceServicer_to_server(EvaluationServicer(services.engine, job_paths), server)
    services.health.set_all(("", *SERVICE_NAMES), NOT_SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(services.health, server)
    reflection.enable_server_reflection((*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
    port = _bind(server, settings)
    if settings.metrics_address:
        try:
            metrics_server = start_metrics_server(settings.metrics_address, services.metrics)
        except OSError:
            server.stop(None)  # frees the gRPC port bound above; the OSError names the metrics address
            raise
        services.on_stop.append(metrics_server.close)
    server.start()
    readiness = _watch_readiness(services)
    readiness.start()
    _close_when_stopped(server, services)
    if settings.http_address:
        # The HTTP API (docs/http.md) over the same engine, tokens, TLS and readiness as gRPC.
        try:
            http = start_http(
                settings,
                engine=services.engine,
                health=services.health,
                readiness=readiness,
                metrics_registry=services.metrics.registry,
                server_version=_server_version(),
            )
        except OSError:
            server.stop(None)  # the services close when it has stopped; the OSError names the HTTP address
            raise
        services.http_port = http.port
        services.stop_http = http.stop
        services.on_stop.append(http.stop)
    return server, port


def _bind(server: grpc.Server, settings: SidecarSettings) -> int:
    tls = settings.tls
    try:
        if tls.cert_file and tls.key_file:
            key, cert = Path(tls.key_file).read_bytes(), Path(tls.cert_file).read_bytes()
            port = server.add_secure_port(settings.address, grpc.ssl_server_credentials([(key, cert)]))
        else:
            port = server.add_insecure_port(settings.address)
    except RuntimeError as exc:  # grpcio raises RuntimeError("Failed to bind ...") for a bad or taken address
        raise OSError(f"address {settings.address} cannot be bound: {exc}") from exc
    if port == 0:
        raise OSError(f"address {settings.address} cannot be bound")
    return port


def _close_when_stopped(server: grpc.Server, services: SidecarServices) -> None:
    def wait_and_close() -> None:
        server.wait_for_termination()
        services.close()

    threading.Thread(target=wait_and_close, name="closer", daemon=True).start()


def _is_loopback(host: str) -> bool:
    return host.strip("[]") in ("127.0.0.1", "localhost", "::1")


def serve(settings: SidecarSettings, *, model: str | None = None) -> int:
    """Run the sidecar until SIGTERM or SIGINT, then let in-flight calls finish (graceful shutdown).

    Start-up checks the settings before anything binds (``startup.preflight``), chooses the default
    model (``model`` is ``serve --model``; the bundled one is registered on a first zero-config start)
    and loads it, then binds: a process that prints "listening on" can serve, and one that cannot stops.

    Raises:
        RagFactoryError: A start-up check failed, the default model cannot load, or a port cannot be
            bound; the CLI prints it as one line, ``error (REASON): message``, and exits non-zero.
    """
    preflight(settings)
    settings = choose_default_model(settings, model)
    with startup_step(f"cannot open the registry at {settings.embedding.registry_path!r}"):
        services = build_services(settings)
    try:
        default = load_default_model(services.engine)
        with startup_step("cannot start the server"):
            server, port = build_server(settings, services)
    except BaseException:
        services.close()
        raise
    host = settings.address.rpartition(":")[0]
    if not settings.auth_token and not _is_loopback(host):
        # Anyone who can reach the port may then register models, move aliases and start jobs.
        logger.warning("listening on %s without auth_token: every client is an administrator (docs/security.md)", host)
    http_host = (settings.http_address or "").rpartition(":")[0]
    if settings.http_address and not (settings.auth_token or settings.client_token) and not _is_loopback(http_host):
        # HTTP has no admin calls, but anyone who can reach it may embed, list models and read metrics.
        logger.warning("HTTP listening on %s without a token: any client may embed (docs/security.md)", http_host)
    logger.info("rag-factory sidecar listening on %s:%d", host, port)
    print(f"listening on {host}:{port}", flush=True)
    if services.http_port is not None:
        print(f"http listening on {(settings.http_address or '').rpartition(':')[0]}:{services.http_port}", flush=True)
    print(f"default model {default.ref} ({default.model_id})", flush=True)
    stopping = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        logger.info("signal %d: finishing in-flight calls (up to %.0f s)", signum, settings.grace_period_s)
        services.health.enter_graceful_shutdown()
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    stopping.wait()
    # Both transports stop accepting at once and drain side by side, within one grace period.
    grpc_stopped = server.stop(settings.grace_period_s)
    if services.stop_http is not None:
        services.stop_http()
    grpc_stopped.wait()
    services.close()
    logger.info("stopped")
    return 0
