"""gRPC health (``grpc.health.v1``) that cannot deadlock, and the monitor that keeps it truthful.

grpcio's own ``HealthServicer`` calls ``context.add_callback`` while holding its lock, and gRPC runs the
callback of a cancelled ``Watch`` under the call's lock and then takes the servicer's lock: two clients that
open and cancel ``Watch`` in a loop deadlocked the whole server (issue 18, item 1). Here no lock is held while
gRPC is called, so the two locks are never taken in opposite orders.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

logger = logging.getLogger(__name__)

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
SERVICE_UNKNOWN = health_pb2.HealthCheckResponse.SERVICE_UNKNOWN

# A watcher wakes at least this often to notice that its client left or its deadline passed.
_WATCH_POLL_S = 0.5


class HealthService(health_pb2_grpc.HealthServicer):
    """Statuses per service name; ``Check`` answers at once, ``Watch`` streams changes until its deadline.

    Args:
        max_watch_s: The longest a ``Watch`` stays open, whatever deadline its client set; the client
            then opens a new one (the gRPC health protocol expects watchers to reconnect).
    """

    def __init__(self, max_watch_s: float = 600.0) -> None:
        self._changed = threading.Condition()
        self._statuses: dict[str, health_pb2.HealthCheckResponse.ServingStatus.ValueType] = {}
        self._max_watch_s = max_watch_s
        self._shutting_down = False

    def set(self, service: str, status: health_pb2.HealthCheckResponse.ServingStatus.ValueType) -> None:
        """Set one service's status and wake its watchers (ignored once shutting down)."""
        self.set_all((service,), status)

    def set_all(self, services: Iterable[str], status: health_pb2.HealthCheckResponse.ServingStatus.ValueType) -> None:
        """Set the same status for several services at once (watchers see one change)."""
        with self._changed:
            if self._shutting_down:
                return
            for service in services:
                self._statuses[service] = status
            self._changed.notify_all()

    def enter_graceful_shutdown(self) -> None:
        """Report NOT_SERVING for every known service from now on, so that balancers drain this server."""
        with self._changed:
            for service in self._statuses:
                self._statuses[service] = NOT_SERVING
            self._shutting_down = True
            self._changed.notify_all()

    def status(self, service: str = "") -> health_pb2.HealthCheckResponse.ServingStatus.ValueType | None:
        """The status of ``service``, or None when it is unknown."""
        with self._changed:
            return self._statuses.get(service)

    def Check(
        self, request: health_pb2.HealthCheckRequest, context: grpc.ServicerContext
    ) -> health_pb2.HealthCheckResponse:
        status = self.status(request.service)
        if status is None:
            context.abort(grpc.StatusCode.NOT_FOUND, "unknown service")
        return health_pb2.HealthCheckResponse(status=status)

    def Watch(
        self, request: health_pb2.HealthCheckRequest, context: grpc.ServicerContext
    ) -> Iterator[health_pb2.HealthCheckResponse]:
        # The stream ends at the client's deadline or after max_watch_s, whichever comes first, and as soon
        # as the client goes away: a watch never holds a server thread for ever.
        ends_at = time.monotonic() + min(context.time_remaining(), self._max_watch_s)
        last: health_pb2.HealthCheckResponse.ServingStatus.ValueType | None = None
        while context.is_active():
            remaining = ends_at - time.monotonic()
            if remaining <= 0:
                return
            with self._changed:
                current = self._statuses.get(request.service, SERVICE_UNKNOWN)
                if current == last:
                    self._changed.wait(timeout=min(_WATCH_POLL_S, remaining))
                    current = self._statuses.get(request.service, SERVICE_UNKNOWN)
            if current != last:
                last = current
                yield health_pb2.HealthCheckResponse(status=current)


class ReadinessMonitor:
    """Keeps health SERVING exactly while the default model can be resolved and loaded.

    The first check also embeds a text (the warm-up); later checks resolve the default reference and fetch
    the model from the loader's cache, which costs a registry read. A default model deprecated, deleted or
    pointed at a broken artifact turns health NOT_SERVING within one interval (issue 18, item 12), and back
    once it is fixed.

    Args:
        health: The health statuses to keep.
        services: Every service name whose status follows readiness ("" included).
        warm_up: Loads the default model and embeds one text; raises when it cannot.
        check: Resolves and loads the default model; raises when it cannot.
        interval_s: Seconds between checks.
        on_ready: Called once, after the first successful check.
    """

    def __init__(
        self,
        health: HealthService,
        services: Iterable[str],
        *,
        warm_up: Callable[[], str],
        check: Callable[[], str],
        interval_s: float,
        on_ready: Callable[[], None],
    ) -> None:
        self._health = health
        self._services = tuple(services)
        self._warm_up = warm_up
        self._check = check
        self._interval_s = interval_s
        self._on_ready = on_ready
        self._stop = threading.Event()
        self._serving: bool | None = None
        self.reason = "starting"

    def start(self) -> None:
        """Run the checks in a daemon thread until :meth:`stop`."""
        threading.Thread(target=self._run, name="readiness", daemon=True).start()

    def stop(self) -> None:
        """Stop checking and keep health NOT_SERVING (the server is shutting down)."""
        self._stop.set()
        self._health.set_all(self._services, NOT_SERVING)

    def _run(self) -> None:
        warmed = False
        while not self._stop.is_set():
            try:
                served = (self._check if warmed else self._warm_up)()
            except Exception as exc:
                self._mark(False, f"the default model cannot serve: {exc}")
            else:
                if not warmed:
                    warmed = True
                    self._mark(True, f"serving; default model {served}")
                    self._on_ready()
                else:
                    self._mark(True, f"serving; default model {served}")
            if self._stop.wait(self._interval_s):
                return

    def _mark(self, serving: bool, reason: str) -> None:
        if self._stop.is_set():
            return
        changed = serving != self._serving
        self._serving, self.reason = serving, reason
        if changed:
            self._health.set_all(self._services, SERVING if serving else NOT_SERVING)
            (logger.info if serving else logger.error)("health %s: %s", "SERVING" if serving else "NOT_SERVING", reason)
